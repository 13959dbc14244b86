"""The append-only, hash-chained, Ed25519-signed approval log (STORE/approvals.log).

One JSON object per line. Each entry's ``hash`` is the sha256 of its canonical JSON (every
field but ``hash`` and ``signature``), and that includes ``prev_hash``: editing, deleting,
inserting or reordering any entry breaks the chain at that point, and without the private
key nobody can re-sign a rewritten chain. Truncating the tail leaves a valid shorter chain,
so the head (seq + hash) is also recorded in a signed head file in the store and in a
checkpoint outside it (beside the key); a log shorter than either is reported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlwarden.approvals.errors import ApprovalLogError
from mlwarden.approvals.keys import (
    default_key_path,
    key_id,
    load_or_create_key,
    load_public_keys,
    public_pem,
)
from mlwarden.util.actor import default_actor
from mlwarden.util.fs import atomic_write_bytes, atomic_write_text, file_lock

LOG_NAME = "approvals.log"
HEAD_NAME = "approvals.head.json"
PUB_NAME = "approvals.pub.pem"
CHECKPOINT_ENV = "MLWARDEN_LOG_CHECKPOINT"
KINDS = ("promotion", "exception", "tag-move", "approval", "revocation")
GENESIS = "0" * 64
VERSION = 1
MAX_LOG_BYTES = 512 << 20
MAX_DETAILS_BYTES = 1 << 20
_FIELDS = {"v", "seq", "time", "kind", "subject", "actor", "details", "prev_hash", "key_id",
           "hash", "signature"}
_DOMAIN = b"mlwarden-approval-log-v1:"


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: float
    kind: str
    subject: str
    actor: str
    details: Mapping[str, Any]
    prev_hash: str
    key_id: str
    hash: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {"v": VERSION, "seq": self.seq, "time": self.time, "kind": self.kind,
                "subject": self.subject, "actor": self.actor, "details": dict(self.details),
                "prev_hash": self.prev_hash, "key_id": self.key_id}

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash, "signature": self.signature}


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def _sign(key: Ed25519PrivateKey, digest: str) -> str:
    return base64.b64encode(key.sign(_DOMAIN + digest.encode())).decode()


def _store_root(store: object) -> Path:
    # A Store object has .root; a path is the root itself (Path.root is "/", so test first).
    root = store if isinstance(store, (str, os.PathLike)) else getattr(store, "root", None)
    if not isinstance(root, (str, os.PathLike)):
        raise ApprovalLogError(f"not a store: {store!r}")
    return Path(root)


def log_path(store: object) -> Path:
    return _store_root(store) / LOG_NAME


def store_id(store: object) -> str:
    return hashlib.sha256(os.path.abspath(_store_root(store)).encode()).hexdigest()[:16]


def default_checkpoint(store: object, key_path: Path | None = None) -> Path:
    """Outside the store, beside the key: a tail truncation of the log is caught against it."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    kp = key_path or default_key_path()
    return kp.parent / "approvals-checkpoints" / f"{store_id(store)}.json"


# ----------------------------------------------------------------------------- reading


def _read_lines(path: Path) -> list[bytes]:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_LOG_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ApprovalLogError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_LOG_BYTES:
        raise ApprovalLogError(f"{path}: larger than {MAX_LOG_BYTES} bytes")
    return [line for line in data.split(b"\n") if line.strip()]


def _parse(line: bytes, n: int) -> LogEntry:
    try:
        d = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError(f"line {n}: not JSON") from None
    if not isinstance(d, dict) or set(d) != _FIELDS:
        raise ValueError(f"line {n}: not a log entry (fields differ)")
    if d["v"] != VERSION or not isinstance(d["seq"], int) or \
            not isinstance(d["time"], (int, float)) or not isinstance(d["details"], dict) or \
            not all(isinstance(d[k], str) for k in ("kind", "subject", "actor", "prev_hash",
                                                    "key_id", "hash", "signature")):
        raise ValueError(f"line {n}: malformed entry")
    return LogEntry(d["seq"], float(d["time"]), d["kind"], d["subject"], d["actor"],
                    d["details"], d["prev_hash"], d["key_id"], d["hash"], d["signature"])


def read_log(store: object) -> list[LogEntry]:
    """Entries as stored, parsed but not verified (``verify_log`` checks them)."""
    entries = []
    for n, line in enumerate(_read_lines(log_path(store)), 1):
        try:
            entries.append(_parse(line, n))
        except ValueError as exc:
            raise ApprovalLogError(f"{log_path(store)}: {exc}") from None
    return entries


# ----------------------------------------------------------------------------- writing


def append(store: object, kind: str, subject: str, details: Mapping[str, Any] | None = None, *,
           actor: str | None = None, key: str | os.PathLike[str] | None = None,
           checkpoint: str | os.PathLike[str] | None = None,
           when: float | None = None) -> LogEntry:
    """Append one signed entry to ``store``'s log (a Store or its root directory).

    ``kind`` is promotion | exception | tag-move | approval | revocation; ``subject`` names
    what it is about (``ORG/NAME@COMMIT``, a sha256, a tag); ``details`` is any JSON object.
    Serialised by a lock; the log and its head are replaced atomically.
    """
    if kind not in KINDS:
        raise ApprovalLogError(f"unknown log entry kind {kind!r} (one of {', '.join(KINDS)})")
    if not subject:
        raise ApprovalLogError("a log entry needs a subject")
    details = dict(details or {})
    try:
        if len(canonical(details)) > MAX_DETAILS_BYTES:
            raise ApprovalLogError("log entry details are too large")
    except (TypeError, ValueError) as exc:
        raise ApprovalLogError(f"log entry details are not plain JSON: {exc}") from None
    root = _store_root(store)
    if not root.is_dir():
        raise ApprovalLogError(f"{root}: no such store directory")
    key_path = Path(key) if key is not None else default_key_path()
    private = load_or_create_key(key_path, store_root=root)
    kid = key_id(private.public_key())
    path = root / LOG_NAME
    with file_lock(root / (LOG_NAME + ".lock")):
        lines = _read_lines(path)
        prev_hash, seq = GENESIS, 1
        if lines:
            try:
                last = _parse(lines[-1], len(lines))
            except ValueError as exc:
                raise ApprovalLogError(f"{path}: refusing to append to a damaged log: {exc}") \
                    from None
            prev_hash, seq = last.hash, last.seq + 1
        at = time.time() if when is None else float(when)
        who = actor or default_actor()
        body = {"v": VERSION, "seq": seq, "time": at, "kind": kind, "subject": subject,
                "actor": who, "details": details, "prev_hash": prev_hash, "key_id": kid}
        digest = entry_hash(body)
        entry = LogEntry(seq, at, kind, subject, who, details, prev_hash, kid, digest,
                         _sign(private, digest))
        data = b"".join(line + b"\n" for line in lines) + canonical(entry.to_dict()) + b"\n"
        atomic_write_bytes(path, data)
        _publish_key(root, private.public_key())
        head = _head(private, kid, seq, digest)
        atomic_write_text(root / HEAD_NAME, head)
        cp = Path(checkpoint) if checkpoint is not None else default_checkpoint(root, key_path)
        try:
            atomic_write_text(cp, head, mode=0o600)
        except OSError as exc:
            raise ApprovalLogError(f"{cp}: cannot write the log checkpoint: {exc.strerror}") \
                from exc
    return entry


def _head(private: Ed25519PrivateKey, kid: str, seq: int, digest: str) -> str:
    msg = f"head:{seq}:{digest}"
    return json.dumps({"seq": seq, "hash": digest, "key_id": kid,
                       "signature": _sign(private, msg)}) + "\n"


def _publish_key(root: Path, public: Ed25519PublicKey) -> None:
    """Keep every signing key's public half in the store, so a plain ``log verify`` works.
    (A pinned --public-key is the real check: whoever can write the store can replace it.)"""
    pem = public_pem(public)
    path = root / PUB_NAME
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    if pem not in existing:
        atomic_write_bytes(path, existing + pem)


# ----------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class LogVerification:
    ok: bool
    entries: int
    head: str | None  # hash of the last valid entry
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    pinned: bool = False  # verified against keys given by the caller, not the store's copy

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "entries": self.entries, "head": self.head,
                "problems": list(self.problems), "warnings": list(self.warnings),
                "pinned_keys": self.pinned}


def verify_log(store: object, public_keys: list[Path] | None = None,
               checkpoint: str | os.PathLike[str] | None = None) -> LogVerification:
    root = _store_root(store)
    problems: list[str] = []
    warnings: list[str] = []
    pinned = bool(public_keys)
    if public_keys:
        keys = load_public_keys(public_keys)
    elif (root / PUB_NAME).exists():
        keys = load_public_keys([root / PUB_NAME])
        warnings.append("verified with the public key stored in the store; pass --public-key "
                        "to pin it (whoever can rewrite the store can replace that copy)")
    else:
        keys = {}
    lines = _read_lines(root / LOG_NAME)
    prev, head, count = GENESIS, None, 0
    hashes: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            e = _parse(line, n)
        except ValueError as exc:
            problems.append(str(exc))
            break
        where = f"line {n} (seq {e.seq})"
        if e.seq != n:
            problems.append(f"{where}: expected seq {n}: an entry was deleted, inserted or "
                            "moved")
        if e.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the previous entry: the "
                            "chain is broken here")
        if entry_hash(e.body()) != e.hash:
            problems.append(f"{where}: content does not match its hash: the entry was edited")
        if e.kind not in KINDS:
            problems.append(f"{where}: unknown kind {e.kind!r}")
        pub = keys.get(e.key_id)
        if pub is None:
            problems.append(f"{where}: signed by unknown key {e.key_id}")
        elif not _check_sig(pub, e.hash.encode(), e.signature):
            problems.append(f"{where}: bad signature")
        if problems:
            break
        prev, head, count = e.hash, e.hash, n
        hashes.append(e.hash)
    if not problems:
        _check_head(root / HEAD_NAME, "head file", keys, hashes, problems, warnings,
                    required=bool(lines))
        cp = Path(checkpoint) if checkpoint is not None else default_checkpoint(root)
        if checkpoint is not None or cp.exists():
            _check_head(cp, "checkpoint", keys, hashes, problems, warnings, required=True)
        else:
            warnings.append("no checkpoint outside the store was found: a truncated tail "
                            "could only be detected against the store's own head file")
    return LogVerification(not problems, count, head, tuple(problems), tuple(warnings), pinned)


def _check_sig(pub: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        pub.verify(base64.b64decode(signature, validate=True), _DOMAIN + message)
        return True
    except (InvalidSignature, ValueError):
        return False


def _check_head(path: Path, label: str, keys: dict[str, Ed25519PublicKey], hashes: list[str],
                problems: list[str], warnings: list[str], required: bool) -> None:
    count = len(hashes)
    try:
        doc = json.loads(path.read_bytes()[:4096])
    except FileNotFoundError:
        if required:
            problems.append(f"{label} {path} is missing")
        return
    except (OSError, ValueError) as exc:
        problems.append(f"{label} {path} is unreadable: {exc}")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or \
            not isinstance(doc.get("hash"), str):
        problems.append(f"{label} {path} is malformed")
        return
    pub = keys.get(str(doc.get("key_id")))
    if pub is None or not _check_sig(pub, f"head:{doc['seq']}:{doc['hash']}".encode(),
                                     str(doc.get("signature"))):
        problems.append(f"{label} {path} has a bad or unknown signature")
        return
    if doc["seq"] > count:
        problems.append(f"{label} records {doc['seq']} entries but the log has {count}: "
                        "the log was truncated")
    elif doc["seq"] >= 1 and hashes[doc["seq"] - 1] != doc["hash"]:
        problems.append(f"{label} does not match entry {doc['seq']}: the log was rewritten")
    elif doc["seq"] < count:
        warnings.append(f"{label} records {doc['seq']} of {count} entries (an append was "
                        "interrupted, or it is an older checkpoint)")
