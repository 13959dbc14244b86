"""Content-addressed scan cache: a file already scanned by this scanner is not scanned again.

Key: the file's sha256, the scanner version and a rule version (a fingerprint of the
scanner's own code and data, so any change to a reader or rule invalidates every entry),
plus the file's last two path components, because a few readers look at names
(``chat_template.jinja``, ``additional_chat_templates/*.jinja``, loader config names).
Entries are JSON written atomically (temp file + rename): concurrent scanners at worst both
write the same entry, and a reader never sees half of one. A corrupt entry is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlwarden
from mlwarden.report.model import FileResult, Finding, Location, Severity, Verdict
from mlwarden.util.fs import atomic_write_text

MAX_ENTRY_BYTES = 16 << 20
_FINGERPRINT_DIRS = ("scan", "report")


@lru_cache(maxsize=1)
def rules_version() -> str:
    """Fingerprint of the scanner's code and data (readers, rules, knowledge bases)."""
    base = Path(mlwarden.__file__).parent
    h = hashlib.sha256()
    for d in _FINGERPRINT_DIRS:
        for p in sorted((base / d).rglob("*")):
            if p.is_file() and p.suffix in (".py", ".json", ".txt", ".tsv", ".toml") \
                    and "__pycache__" not in p.parts:
                h.update(p.relative_to(base).as_posix().encode() + b"\0")
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def scanner_version() -> str:
    return mlwarden.__version__


def default_root() -> Path:
    env = os.environ.get("MLWARDEN_SCAN_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mlwarden" / "scan"


def _name_key(rel_path: str) -> str:
    tail = "/".join(rel_path.replace("\\", "/").split("/")[-2:])
    return hashlib.sha1(tail.encode("utf-8", "surrogatepass"),
                        usedforsecurity=False).hexdigest()[:12]


def _loc_to(d: Location | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {k: getattr(d, k) for k in ("member", "line", "column", "offset", "detail")
            if getattr(d, k) is not None}


def _encode(results: Sequence[FileResult], display: str) -> list[dict[str, Any]]:
    def rel(p: str | None) -> str | None:
        return p[len(display):] if p is not None and p.startswith(display) else p

    return [{"path": rel(r.path), "format": r.format, "verdict": r.verdict.value,
             "size": r.size, "sha256": r.sha256, "parent": rel(r.parent),
             "findings": [{"rule": f.rule, "severity": f.severity.value,
                           "verdict": f.verdict.value, "message": f.message,
                           "location": _loc_to(f.location)} for f in r.findings]}
            for r in results]


def _decode(items: list[dict[str, Any]], display: str) -> list[FileResult]:
    def full(p: str | None) -> str | None:
        return None if p is None else display + p

    out: list[FileResult] = []
    for r in items:
        findings = tuple(
            Finding(f["rule"], Severity(f["severity"]), Verdict(f["verdict"]), f["message"],
                    Location(**f["location"]) if f.get("location") else None)
            for f in r["findings"])
        out.append(FileResult(full(r["path"]) or display, r["format"], Verdict(r["verdict"]),
                              r["size"], r["sha256"], findings, full(r["parent"])))
    return out


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int


class ScanCache:
    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.key = f"{scanner_version()}-{rules_version()}"

    def _path(self, sha256: str, rel_path: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / self.key / sha256[:2] / f"{sha256[2:]}.{_name_key(rel_path)}.json"

    def get(self, sha256: str, rel_path: str, display: str) -> list[FileResult] | None:
        p = self._path(sha256, rel_path)
        try:
            with open(p, "rb") as fh:
                raw = fh.read(MAX_ENTRY_BYTES + 1)
            if len(raw) > MAX_ENTRY_BYTES:
                raise ValueError("entry too large")
            doc = json.loads(raw)
            if doc.get("sha256") != sha256 or doc.get("key") != self.key:
                raise ValueError("entry for another key")
            results = _decode(doc["results"], display)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                os.unlink(p)  # corrupt: drop it, rescan
            return None
        return results if results else None

    def put(self, sha256: str, rel_path: str, display: str,
            results: Sequence[FileResult]) -> None:
        doc = {"sha256": sha256, "key": self.key, "results": _encode(results, display)}
        # A cache that cannot be written only costs a rescan next time.
        with contextlib.suppress(OSError):
            atomic_write_text(self._path(sha256, rel_path), json.dumps(doc, sort_keys=True))
