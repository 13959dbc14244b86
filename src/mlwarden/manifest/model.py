"""model-manifest.yaml: the pinned, reviewed state of every model a project may load.

One entry per model id: the commit and the ref it came from, sha256 and size of each
file, the scan verdict and scanner version, approvals, exceptions, remote-code review and
conversions. Written atomically under a lock, with sorted keys and one field per line, so
a change shows up as a small, readable diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mlwarden.util.fs import atomic_write_text, file_lock

FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 20
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
HEADER = ("# model-manifest.yaml: models this project may load, pinned by commit and sha256.\n"
          "# Written by `mlwarden pull` / `mlwarden convert`; checked by `mlwarden verify`\n"
          "# and by the load guard (`mlwarden run`). Review changes like code.\n")


class ManifestError(Exception):
    """The manifest cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class ManifestFile:
    sha256: str
    size: int
    verdict: str | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"sha256": self.sha256, "size": self.size}
        if self.verdict:
            d["verdict"] = self.verdict
        return d


@dataclass(frozen=True)
class ModelEntry:
    commit: str
    files: Mapping[str, ManifestFile]
    ref: str | None = None  # the branch or tag the commit was resolved from
    ref_kind: str = "commit"  # branch | tag | commit
    source: str | None = None  # upstream endpoint
    pulled_at: str | None = None
    scan: Mapping[str, Any] = field(default_factory=dict)  # verdict, scanner, rules
    approvals: tuple[Mapping[str, Any], ...] = ()
    exceptions: tuple[Mapping[str, Any], ...] = ()
    remote_code: Mapping[str, Any] | None = None  # {files, reviewer, commit}
    conversions: tuple[Mapping[str, Any], ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)

    @property
    def remote_code_approved(self) -> bool:
        rc = self.remote_code
        return rc is not None and rc.get("commit") == self.commit and bool(rc.get("reviewer"))

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "commit": self.commit, "ref": self.ref, "ref_kind": self.ref_kind,
            "files": {p: f.to_dict() for p, f in self.files.items()},
        }
        for k in ("source", "pulled_at", "remote_code"):
            if getattr(self, k) is not None:
                d[k] = _plain(getattr(self, k))
        for k in ("scan", "policy"):
            if getattr(self, k):
                d[k] = _plain(getattr(self, k))
        for k in ("approvals", "exceptions", "conversions"):
            if getattr(self, k):
                d[k] = [_plain(x) for x in getattr(self, k)]
        return d


@dataclass(frozen=True)
class Manifest:
    models: Mapping[str, ModelEntry] = field(default_factory=dict)

    def get(self, model_id: str) -> ModelEntry | None:
        return self.models.get(model_id)

    def with_model(self, model_id: str, entry: ModelEntry) -> Manifest:
        return replace(self, models={**self.models, model_id: entry})

    def without_model(self, model_id: str) -> Manifest:
        return replace(self, models={k: v for k, v in self.models.items() if k != model_id})

    def to_dict(self) -> dict[str, object]:
        return {"version": FORMAT_VERSION,
                "models": {k: self.models[k].to_dict() for k in sorted(self.models)}}

    def dumps(self) -> str:
        return HEADER + str(yaml.safe_dump(self.to_dict(), sort_keys=True,
                                       default_flow_style=False, allow_unicode=True,
                                       width=100))


def _plain(v: Any) -> Any:
    """Mappings and sequences as plain dicts/lists so yaml.safe_dump accepts them."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _require(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ManifestError(f"{where}: {what}")


def _entry(model_id: str, raw: Any, where: str) -> ModelEntry:
    w = f"{where}: models.{model_id}"
    _require(isinstance(raw, dict), w, "expected a mapping")
    commit = raw.get("commit")
    _require(isinstance(commit, str) and _HEX40.fullmatch(commit) is not None, w,
             "commit must be 40 lower-case hex digits")
    files_raw = raw.get("files", {})
    _require(isinstance(files_raw, dict), w, "files must be a mapping")
    files: dict[str, ManifestFile] = {}
    for path, f in files_raw.items():
        _require(isinstance(path, str) and isinstance(f, dict), w, f"bad file entry {path!r}")
        sha, size = f.get("sha256"), f.get("size")
        _require(isinstance(sha, str) and _HEX64.fullmatch(sha) is not None, w,
                 f"files.{path}.sha256 must be 64 lower-case hex digits")
        _require(isinstance(size, int) and not isinstance(size, bool) and size >= 0, w,
                 f"files.{path}.size must be a non-negative integer")
        v = f.get("verdict")
        files[path] = ManifestFile(sha, size, v if isinstance(v, str) else None)

    def seq(key: str) -> tuple[Mapping[str, Any], ...]:
        v = raw.get(key, [])
        _require(isinstance(v, list) and all(isinstance(x, dict) for x in v), w,
                 f"{key} must be a list of mappings")
        return tuple(v)

    def mapping(key: str) -> Mapping[str, Any]:
        v = raw.get(key, {})
        _require(isinstance(v, dict), w, f"{key} must be a mapping")
        return dict(v)

    rc = raw.get("remote_code")
    _require(rc is None or isinstance(rc, dict), w, "remote_code must be a mapping")
    ref = raw.get("ref")
    kind = raw.get("ref_kind", "commit")
    _require(ref is None or isinstance(ref, str), w, "ref must be a string")
    _require(kind in ("branch", "tag", "commit"), w, "ref_kind must be branch, tag or commit")
    src, at = raw.get("source"), raw.get("pulled_at")
    return ModelEntry(commit=commit, files=files, ref=ref, ref_kind=kind,
                      source=src if isinstance(src, str) else None,
                      pulled_at=str(at) if at is not None else None, scan=mapping("scan"),
                      approvals=seq("approvals"), exceptions=seq("exceptions"),
                      remote_code=rc, conversions=seq("conversions"),
                      policy=mapping("policy"))


def loads(text: str, where: str = "<manifest>") -> Manifest:
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ManifestError(f"{where}: invalid YAML: {exc}") from None
    if doc is None:
        return Manifest()
    _require(isinstance(doc, dict), where, "expected a mapping at the top level")
    version = doc.get("version", FORMAT_VERSION)
    _require(version == FORMAT_VERSION, where, f"unsupported manifest version {version!r}")
    models = doc.get("models", {}) or {}
    _require(isinstance(models, dict), where, "models must be a mapping")
    return Manifest({str(k): _entry(str(k), v, where) for k, v in models.items()})


def load(path: str | os.PathLike[str], missing_ok: bool = True) -> Manifest:
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return Manifest()
        raise ManifestError(f"{p}: manifest not found") from None
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{p}: larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{p}: not UTF-8 text") from None
    return loads(text, str(p))


def save(path: str | os.PathLike[str], manifest: Manifest) -> None:
    atomic_write_text(path, manifest.dumps())


def lock_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.parent / f".{p.name}.lock"


def update(path: str | os.PathLike[str], change: Callable[[Manifest], Manifest]) -> Manifest:
    """Read-modify-write under an exclusive lock: concurrent writers never lose an entry."""
    with file_lock(lock_path(path)):
        new = change(load(path))
        save(path, new)
        return new
