"""Content-addressed verdict cache: a file already scanned by this scanner is not scanned
again, locally or anywhere in a fleet.

Key: the file's sha256 (or its git blob sha1, ``git_key``), its last two path components
(a few readers look at names: ``chat_template.jinja``, loader config names), and the
scanner key: the mlwarden version
plus a fingerprint of the scanner's code and data (readers, rules, knowledge bases). A new
scanner therefore misses every old entry and re-scans lazily; old rows stay until pruned.

Entries also record their *origin*: ``verified`` when the scanned bytes were hashed here
and matched the key, else the endpoint whose published metadata (an LFS sha256) supplied
the key. A lookup names the origins it trusts, so an entry recorded from one mirror's
metadata never vouches for a file fetched from another endpoint.

The cache lives in a database through the store's database layer (``store/db.py``): a
SQLite file by default, PostgreSQL for a cluster (or the store's own database). Writes are
single-statement upserts, atomic on their own; concurrent writers at worst write the same
row twice. A row that does not decode is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlwarden
from mlwarden.report.model import FileResult, Finding, Location, Severity, Verdict
from mlwarden.store.db import Database, SqliteDatabase, open_database
from mlwarden.store.errors import StoreError

MAX_ENTRY_BYTES = 16 << 20
_FINGERPRINT_DIRS = ("scan", "report")
VERIFIED = "verified"

_DDL = """
CREATE TABLE IF NOT EXISTS scan_verdicts (
  sha256 TEXT NOT NULL, name_key TEXT NOT NULL, scanner TEXT NOT NULL, origin TEXT NOT NULL,
  verdict TEXT NOT NULL, results TEXT NOT NULL, created_at {real} NOT NULL,
  PRIMARY KEY (sha256, name_key, scanner, origin))
"""


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


def scanner_key() -> str:
    return f"{scanner_version()}-{rules_version()}"


def default_root() -> Path:
    """Where the default SQLite cache lives (``MLWARDEN_SCAN_CACHE`` overrides)."""
    env = os.environ.get("MLWARDEN_SCAN_CACHE")
    if env and "://" not in env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "mlwarden" / "scan"


def name_key(rel_path: str) -> str:
    tail = "/".join(rel_path.replace("\\", "/").split("/")[-2:])
    return hashlib.sha1(tail.encode("utf-8", "surrogatepass"),
                        usedforsecurity=False).hexdigest()[:12]


def _loc_to(d: Location | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {k: getattr(d, k) for k in ("member", "line", "column", "offset", "detail")
            if getattr(d, k) is not None}


def encode(results: Sequence[FileResult], display: str) -> list[dict[str, Any]]:
    """Results with paths relative to ``display`` (the same bytes under another name)."""
    def rel(p: str | None) -> str | None:
        return p[len(display):] if p is not None and p.startswith(display) else p

    return [{"path": rel(r.path), "format": r.format, "verdict": r.verdict.value,
             "size": r.size, "sha256": r.sha256, "parent": rel(r.parent),
             "findings": [{"rule": f.rule, "severity": f.severity.value,
                           "verdict": f.verdict.value, "message": f.message,
                           "location": _loc_to(f.location)} for f in r.findings]}
            for r in results]


def decode(items: list[dict[str, Any]], display: str) -> list[FileResult]:
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


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0


def _database(location: str | os.PathLike[str] | Database | None) -> tuple[Database, bool]:
    """(database, whether this cache owns and closes it)."""
    if location is not None and not isinstance(location, (str, os.PathLike)):
        return location, False
    text = os.fspath(location) if location is not None else None
    if text is None:
        env = os.environ.get("MLWARDEN_SCAN_CACHE")
        text = env if env else str(default_root())
    if "://" in text:
        return open_database(text, Path(".")), True
    p = Path(text)
    if p.suffix not in (".db", ".sqlite", ".sqlite3"):  # a directory, as before
        p.mkdir(parents=True, exist_ok=True)
        p = p / "verdicts.db"
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(p), True


class ScanCache:
    """The verdict cache. ``location``: a directory or ``.db`` file (SQLite), a
    ``sqlite:///`` or ``postgresql://`` URL, or an open :class:`Database` (the store's)."""

    def __init__(self, location: str | os.PathLike[str] | Database | None = None) -> None:
        self.db, self._owned = _database(location)
        self.key = scanner_key()
        self.stats = CacheStats()
        self._lock = threading.Lock()
        real = "DOUBLE PRECISION" if self.db.dialect == "postgresql" else "REAL"
        for attempt in range(5):
            try:
                with self.db.transaction() as tx:
                    tx.execute(_DDL.format(real=real))
                break
            except StoreError as exc:
                # Processes creating a fresh SQLite file together can meet "locked" while
                # one of them switches it to WAL; that clears at once.
                if "locked" not in str(exc) or attempt == 4:
                    raise StoreError(f"scan cache: {exc}") from exc
                self.db.close()
                time.sleep(0.05 * (attempt + 1))

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def get(self, sha256: str, rel_path: str, display: str,
            trust: Iterable[str] = (VERIFIED,)) -> list[FileResult] | None:
        got = self.get_many([(sha256, rel_path, display)], trust)
        return got.get((sha256, rel_path))

    def get_many(self, keys: Sequence[tuple[str, str, str]], trust: Iterable[str] = (VERIFIED,)
                 ) -> dict[tuple[str, str], list[FileResult]]:
        """(sha256, rel_path) -> results for every key the cache answers, in one query
        per 500 keys. ``keys`` are (sha256, rel_path, display)."""
        origins = list(dict.fromkeys(trust))
        out: dict[tuple[str, str], list[FileResult]] = {}
        wanted = {(sha, name_key(rel)): (sha, rel, display) for sha, rel, display in keys
                  if _is_sha256(sha)}
        items = list(wanted)
        for i in range(0, len(items), 500):
            chunk = items[i:i + 500]
            shas = sorted({s for s, _ in chunk})
            sql = (f"SELECT sha256, name_key, origin, results FROM scan_verdicts WHERE scanner = ? "
                   f"AND sha256 IN ({','.join('?' * len(shas))}) "
                   f"AND origin IN ({','.join('?' * len(origins))})")
            try:
                rows = self.db.read(sql, [self.key, *shas, *origins])
            except StoreError:
                rows = []  # an unreachable cache costs a rescan, never a wrong verdict
            best: dict[tuple[str, str], tuple[int, str]] = {}
            for sha, nk, origin, blob in rows:
                k = (sha, nk)
                if k not in wanted:
                    continue
                rank = origins.index(origin)
                if k not in best or rank < best[k][0]:
                    best[k] = (rank, blob)
            for k, (_rank, blob) in best.items():
                sha, rel, display = wanted[k]
                try:
                    if len(blob) > MAX_ENTRY_BYTES:
                        raise ValueError("entry too large")
                    results = decode(json.loads(blob), display)
                except (ValueError, KeyError, TypeError):
                    continue
                if results:
                    out[(sha, rel)] = results
        with self._lock:
            self.stats.hits += len(out)
            self.stats.misses += len(keys) - len(out)
        return out

    def put(self, sha256: str, rel_path: str, display: str, results: Sequence[FileResult],
            origin: str = VERIFIED) -> None:
        if not _is_sha256(sha256) or not results:
            return
        blob = json.dumps(encode(results, display), sort_keys=True)
        verdict = Verdict.worst(r.verdict for r in results).value
        # One statement: atomic without the store's write lock; RETURNING gives read() rows.
        sql = ("INSERT INTO scan_verdicts (sha256, name_key, scanner, origin, verdict, results, "
               "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256, name_key, "
               "scanner, origin) DO UPDATE SET verdict = excluded.verdict, results = "
               "excluded.results, created_at = excluded.created_at RETURNING sha256")
        try:
            self.db.read(sql, (sha256, name_key(rel_path), self.key, origin, verdict, blob,
                               time.time()))
        except StoreError:
            return  # a cache that cannot be written only costs a rescan next time
        with self._lock:
            self.stats.writes += 1

    def prune(self) -> int:
        """Delete entries of other scanner versions; returns how many went."""
        rows = self.db.read("DELETE FROM scan_verdicts WHERE scanner <> ? RETURNING sha256",
                            (self.key,))
        return len(rows)


def git_key(oid: str) -> str:
    """The cache key of a file known by its git blob sha1 (a Hub tree's oid for non-LFS
    files): the same content has the same oid, so it serves as a content address."""
    return f"git-{oid}"


def _is_sha256(value: str) -> bool:
    """A sha256 digest, or a git_key()."""
    if value.startswith("git-"):
        value = value[4:]
        return len(value) == 40 and all(c in "0123456789abcdef" for c in value)
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
