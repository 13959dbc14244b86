"""Seals: an Ed25519-signed manifest of every instruction file (sha256, size, symlink target,
compressed content snapshot) plus the discovery settings, so that verification repeats the
same discovery and notices files that were added, not only those that changed.

Seal file (JSON): {"format": "mlwarden-memory-seal/1", "payload": "<JSON text>",
"signature": "<base64>"}. The signature covers ``format + "\\n" + payload`` byte for byte, so
everything in the file except the signature itself is authenticated.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import difflib
import json
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import mlwarden
from mlwarden.memory import rules as R
from mlwarden.memory.content import DEFAULT_ALLOW_HOSTS, CheckOptions
from mlwarden.memory.discover import DiscoverySettings, InstructionFile, resolve_key
from mlwarden.memory.fileio import FileState, MiB, read_bounded
from mlwarden.memory.inventory import (
    Inventory,
    content_findings,
    file_result,
    identity_finding,
    inventory,
)
from mlwarden.memory.keys import key_id
from mlwarden.report.model import FileResult, Finding, Report, Verdict
from mlwarden.util.fs import atomic_write_text, file_lock

SEAL_FORMAT = "mlwarden-memory-seal/1"
DEFAULT_SEAL = ".mlwarden/memory.seal"
MAX_SEAL_BYTES = 256 * MiB
SNAPSHOT_FILE_LIMIT = 1 * MiB  # per file, before compression
SNAPSHOT_TOTAL_LIMIT = 32 * MiB
MAX_DIFF_LINES = 400
INTEGRITY_RULES = frozenset(
    {R.MODIFIED.id, R.DELETED.id, R.ADDED.id, R.BAD_SIGNATURE.id, R.SEAL_MISSING.id})


class SealInvalid(Exception):
    """The seal cannot be trusted: bad signature, other key, or malformed."""


@dataclass(frozen=True)
class SealedEntry:
    key: str
    kind: str
    type: str
    sha256: str | None
    size: int | None
    target: str | None = None
    snapshot: bytes | None = None  # zlib-compressed content

    def state(self) -> FileState:
        return FileState(self.type, self.sha256, self.size, self.target)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.key, "kind": self.kind, "type": self.type,
                "sha256": self.sha256, "size": self.size, "target": self.target,
                "snapshot": base64.b64encode(self.snapshot).decode() if self.snapshot
                else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SealedEntry:
        snap = d.get("snapshot")
        return cls(str(d["path"]), str(d["kind"]), str(d["type"]), d.get("sha256"),
                   d.get("size"), d.get("target"),
                   base64.b64decode(snap, validate=True) if snap else None)


@dataclass(frozen=True)
class Manifest:
    created: str
    tool_version: str
    key_id: str
    settings: DiscoverySettings
    allow_hosts: tuple[str, ...]
    entries: tuple[SealedEntry, ...]

    def payload(self) -> str:
        doc = {"format": SEAL_FORMAT, "created": self.created, "tool": self.tool_version,
               "key_id": self.key_id, "discovery": self.settings.to_dict(),
               "allow_hosts": list(self.allow_hosts),
               "files": [e.to_dict() for e in self.entries]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_payload(cls, payload: str) -> Manifest:
        doc = json.loads(payload)
        if doc.get("format") != SEAL_FORMAT:
            raise ValueError(f"unsupported seal format {doc.get('format')!r}")
        return cls(str(doc["created"]), str(doc["tool"]), str(doc["key_id"]),
                   DiscoverySettings.from_dict(doc["discovery"]),
                   tuple(str(h) for h in doc.get("allow_hosts", [])),
                   tuple(SealedEntry.from_dict(e) for e in doc["files"]))


def _signed_bytes(payload: str) -> bytes:
    return (SEAL_FORMAT + "\n" + payload).encode("utf-8")


def seal_path_for(root: Path, seal: Path | None) -> Path:
    return seal if seal is not None else root / DEFAULT_SEAL


# ----------------------------------------------------------------------------- sealing

@dataclass(frozen=True)
class SealOutcome:
    manifest: Manifest
    report: Report
    seal_path: Path


def build_manifest(inv: Inventory, public: Ed25519PublicKey, settings: DiscoverySettings,
                   allow_hosts: tuple[str, ...], snapshots: bool = True) -> Manifest:
    entries: list[SealedEntry] = []
    budget = SNAPSHOT_TOTAL_LIMIT
    for f in inv.files:
        st = inv.states[f.key]
        snap = None
        if (snapshots and not f.is_encrypted and st.content is not None
                and len(st.content) <= min(SNAPSHOT_FILE_LIMIT, budget)):
            snap = zlib.compress(st.content, 9)
            budget -= len(st.content)
        entries.append(SealedEntry(f.key, f.kind, st.type, st.sha256, st.size, st.target, snap))
    return Manifest(datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    mlwarden.__version__, key_id(public), settings, allow_hosts,
                    tuple(entries))


def write_seal(path: Path, manifest: Manifest, private: Ed25519PrivateKey) -> None:
    payload = manifest.payload()
    signature = private.sign(_signed_bytes(payload))
    doc = {"format": SEAL_FORMAT, "payload": payload,
           "signature": base64.b64encode(signature).decode()}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n", mode=0o644)


def seal(root: Path, private: Ed25519PrivateKey, settings: DiscoverySettings,
         allow_hosts: tuple[str, ...] = (), seal_file: Path | None = None,
         snapshots: bool = True, home: Path | None = None,
         refuse_malicious: bool = True) -> SealOutcome:
    """Discover, check, and write a signed seal (atomically, under a lock)."""
    path = seal_path_for(root, seal_file)
    hosts = tuple(dict.fromkeys(DEFAULT_ALLOW_HOSTS + allow_hosts))
    with file_lock(str(path) + ".lock"):
        inv = inventory(root, settings, CheckOptions(hosts), "memory seal", home)
        manifest = build_manifest(inv, private.public_key(), settings, allow_hosts, snapshots)
        bad = [fr.path for fr in inv.report.files if fr.verdict is Verdict.MALICIOUS]
        if refuse_malicious and bad:
            raise SealRefused(bad, inv.report)
        write_seal(path, manifest, private)
    meta = dict(inv.report.meta)
    meta.update({"seal": str(path), "key_id": manifest.key_id, "created": manifest.created})
    report = Report("memory seal", inv.report.files, inv.report.elapsed_seconds, meta)
    return SealOutcome(manifest, report, path)


class SealRefused(Exception):
    def __init__(self, paths: list[str], report: Report) -> None:
        super().__init__(f"refusing to seal malicious content in: {', '.join(paths)}")
        self.report = report


# ----------------------------------------------------------------------------- reading

def read_seal(path: Path, public: Ed25519PublicKey) -> Manifest:
    """The manifest, only after its signature checks out against ``public``.

    Raises FileNotFoundError when there is no seal and SealInvalid for anything else."""
    try:
        raw = read_bounded(path, MAX_SEAL_BYTES)
    except ValueError as exc:
        raise SealInvalid(str(exc)) from exc
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SealInvalid(f"cannot read seal: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(raw.decode("utf-8"))
        payload, sig_b64 = doc["payload"], doc["signature"]
        if doc.get("format") != SEAL_FORMAT or not isinstance(payload, str):
            raise ValueError("not an mlwarden memory seal")
        signature = base64.b64decode(sig_b64, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise SealInvalid(f"seal file is malformed ({exc})") from exc
    try:
        public.verify(signature, _signed_bytes(payload))
    except InvalidSignature:
        claimed = None
        with contextlib.suppress(ValueError, AttributeError):
            claimed = json.loads(payload).get("key_id")
        if claimed and claimed != key_id(public):
            raise SealInvalid(f"seal was signed by another key (key id {claimed}, expected "
                              f"{key_id(public)})") from None
        raise SealInvalid("seal signature does not match its content: the seal was "
                          "altered") from None
    try:
        manifest = Manifest.from_payload(payload)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SealInvalid(f"signed seal has an unreadable payload ({exc})") from exc
    if manifest.key_id != key_id(public):
        raise SealInvalid("seal payload names another key")
    return manifest


# ----------------------------------------------------------------------------- verifying

@dataclass(frozen=True)
class Change:
    path: str
    change: str  # modified, deleted, added
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "change": self.change, "detail": self.detail}


@dataclass(frozen=True)
class VerifyOutcome:
    report: Report
    changes: tuple[Change, ...] = ()
    diffs: dict[str, str] = field(default_factory=dict)
    sealed: bool = True  # False: seal missing or invalid

    @property
    def ok(self) -> bool:
        return self.sealed and not self.changes


def _snapshot_text(entry: SealedEntry) -> str | None:
    if entry.snapshot is None:
        return None
    d = zlib.decompressobj()
    data = d.decompress(entry.snapshot, SNAPSHOT_FILE_LIMIT + 1)
    if len(data) > SNAPSHOT_FILE_LIMIT:
        return None
    return data.decode("utf-8", "replace")


def unified_diff(entry: SealedEntry, state: FileState) -> str | None:
    before = _snapshot_text(entry)
    if before is None or state.content is None:
        return None
    after = state.content.decode("utf-8", "replace")
    lines = list(difflib.unified_diff(before.splitlines(keepends=True),
                                      after.splitlines(keepends=True),
                                      f"sealed/{entry.key}", f"current/{entry.key}"))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... diff truncated ({len(lines)} lines)\n"]
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n"
                   for ln in lines)


def _describe_change(entry: SealedEntry, state: FileState, diff: str | None) -> str:
    if entry.type != state.type:
        return f"was a {entry.type}, now a {state.type}"
    if entry.target != state.target:
        return f"symlink now points to {state.target!r} (sealed: {entry.target!r})"
    parts = [f"sha256 {str(entry.sha256)[:12]}... -> {str(state.sha256)[:12]}...",
             f"size {entry.size} -> {state.size}"]
    if diff:
        plus = sum(1 for ln in diff.splitlines() if ln.startswith("+")
                   and not ln.startswith("+++"))
        minus = sum(1 for ln in diff.splitlines() if ln.startswith("-")
                    and not ln.startswith("---"))
        parts.append(f"+{plus}/-{minus} lines")
    return ", ".join(parts)


def _seal_failure(path: Path, finding: Finding, start: float, root: Path) -> VerifyOutcome:
    fr = FileResult(str(path), "memory-seal", finding.verdict, None, None, (finding,))
    return VerifyOutcome(Report("memory verify", (fr,), time.monotonic() - start,
                                meta={"root": str(root), "seal": str(path)}), sealed=False)


def verify(root: Path, public: Ed25519PublicKey, seal_file: Path | None = None,
           allow_hosts: tuple[str, ...] = (), home: Path | None = None) -> VerifyOutcome:
    """Check the seal's signature, then every sealed and currently discoverable file."""
    start = time.monotonic()
    path = seal_path_for(root, seal_file)
    try:
        manifest = read_seal(path, public)
    except FileNotFoundError:
        return _seal_failure(path, R.SEAL_MISSING.finding(
            f"no seal at {path}; run `mlwarden memory seal` first"), start, root)
    except SealInvalid as exc:
        return _seal_failure(path, R.BAD_SIGNATURE.finding(str(exc)), start, root)
    hosts = tuple(dict.fromkeys(DEFAULT_ALLOW_HOSTS + manifest.allow_hosts + allow_hosts))
    options = CheckOptions(hosts)
    inv = inventory(root, manifest.settings, options, "memory verify", home)
    current = {f.key: f for f in inv.files}
    sealed = {e.key: e for e in manifest.entries}
    results: list[FileResult] = []
    changes: list[Change] = []
    diffs: dict[str, str] = {}
    by_key = {fr.path: fr for fr in inv.report.files}
    for key in sorted(set(current) | set(sealed), key=lambda k: (k.startswith("~/"), k)):
        entry, f = sealed.get(key), current.get(key)
        if entry is None:
            assert f is not None
            fr = by_key[key]
            change = Change(key, "added", f"not in the seal ({f.agent}: {f.description})")
            changes.append(change)
            results.append(FileResult(fr.path, fr.format, Verdict.MALICIOUS, fr.size,
                                      fr.sha256, (R.ADDED.finding(change.detail),
                                                  *fr.findings)))
            continue
        if f is None:
            # Not discovered now: deleted, or turned into something discovery skips.
            from mlwarden.memory.fileio import read_state

            state = read_state(resolve_key(key, root, home))
            if state.type == "missing":
                detail = f"sealed {entry.size}-byte {entry.kind} file is gone"
            else:
                detail = f"no longer discoverable (now a {state.type})"
            change = Change(key, "deleted", detail)
            changes.append(change)
            results.append(FileResult(key, entry.kind, Verdict.MALICIOUS, None, None,
                                      (R.DELETED.finding(detail),)))
            continue
        state = inv.states[key]
        if state.same_as(entry.state()):
            fr = by_key[key]
            results.append(FileResult(fr.path, fr.format, fr.verdict, fr.size, fr.sha256,
                                      (R.SEALED_OK.finding("matches the seal"), *fr.findings)))
            continue
        diff = unified_diff(entry, state)
        if diff:
            diffs[key] = diff
        detail = _describe_change(entry, state, diff)
        changes.append(Change(key, "modified", detail))
        findings = [R.MODIFIED.finding(detail), identity_finding(f, state),
                    *content_findings(f, state, options)]
        results.append(file_result(f, state, findings))
    meta: dict[str, object] = {
        "root": str(root), "seal": str(path), "sealed_at": manifest.created,
        "key_id": manifest.key_id, "discovery": manifest.settings.to_dict(),
        "changes": [c.to_dict() for c in changes],
    }
    if diffs:
        meta["diffs"] = diffs
    return VerifyOutcome(Report("memory verify", tuple(results), time.monotonic() - start,
                                meta), tuple(changes), diffs)


def failing_exit(report: Report, fail_on: Verdict | None) -> int:
    """Exit status: integrity findings always fail; content findings from ``fail_on`` up."""
    worst: Verdict | None = None
    for fr in report.files:
        for f in fr.findings:
            fails = f.rule in INTEGRITY_RULES or (
                fail_on is not None and f.verdict is not Verdict.CLEAN
                and f.verdict.rank >= fail_on.rank)
            if fails and (worst is None or f.verdict.rank > worst.rank):
                worst = f.verdict
    if worst is None or worst is Verdict.CLEAN:
        return 0
    return {Verdict.MALICIOUS: 1, Verdict.UNSCANNABLE: 2, Verdict.SUSPICIOUS: 3}[worst]


__all__ = ["InstructionFile", "Manifest", "SealInvalid", "VerifyOutcome", "seal", "verify"]
