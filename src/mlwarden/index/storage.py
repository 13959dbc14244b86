"""Persistence of the index, apart from its logic (devpi's keyfs/model split).

The index keeps its own tables in the store's database, created IF NOT EXISTS when it
opens the store, and its file bytes in the store's content-addressed blobs. A file row is
written in one transaction after its blob is in place, so a process killed during an
admission leaves at most an unreferenced blob, never a half-admitted file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mlwarden.index.model import IndexFile, Origin, State, findings_from_json, findings_to_json
from mlwarden.store import Store
from mlwarden.store.errors import ConflictError, StoreError
from mlwarden.store.store import Ingest

_DDL = """
CREATE TABLE IF NOT EXISTS index_files (
  filename TEXT PRIMARY KEY, project TEXT NOT NULL, version TEXT NOT NULL,
  kind TEXT NOT NULL, origin TEXT NOT NULL, state TEXT NOT NULL, sha256 TEXT,
  size {bigint}, requires_python TEXT, metadata_sha256 TEXT, upload_time {real},
  yanked TEXT, upstream_url TEXT, upstream_sha256 TEXT, findings TEXT NOT NULL,
  decided_at {real} NOT NULL, decided_by TEXT NOT NULL, hold_until {real},
  fetch_seconds {real} NOT NULL DEFAULT 0, inspect_seconds {real} NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS index_files_project ON index_files (project, state);
CREATE TABLE IF NOT EXISTS index_pages (
  project TEXT PRIMARY KEY, fetched_at {real} NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS index_file_facts (url TEXT PRIMARY KEY, at {real}, size {bigint});
CREATE TABLE IF NOT EXISTS index_confusion (
  project TEXT PRIMARY KEY, upstream TEXT NOT NULL, first_seen {real} NOT NULL,
  last_seen {real} NOT NULL)
"""
_TYPES = {"sqlite": {"real": "REAL", "bigint": "INTEGER"},
          "postgresql": {"real": "DOUBLE PRECISION", "bigint": "BIGINT"}}
_COLS = ("filename, project, version, kind, origin, state, sha256, size, requires_python, "
         "metadata_sha256, upload_time, yanked, upstream_url, upstream_sha256, findings, "
         "decided_at, decided_by, hold_until, fetch_seconds, inspect_seconds")


def _row(r: Sequence[Any]) -> IndexFile:
    return IndexFile(
        filename=r[0], project=r[1], version=r[2], kind=r[3], origin=Origin(r[4]),
        state=State(r[5]), sha256=r[6], size=None if r[7] is None else int(r[7]),
        requires_python=r[8], metadata_sha256=r[9],
        upload_time=None if r[10] is None else float(r[10]), yanked=r[11],
        upstream_url=r[12], upstream_sha256=r[13], findings=findings_from_json(r[14]),
        decided_at=float(r[15]), decided_by=r[16],
        hold_until=None if r[17] is None else float(r[17]),
        fetch_seconds=float(r[18] or 0), inspect_seconds=float(r[19] or 0))


def _values(f: IndexFile) -> tuple[Any, ...]:
    return (f.filename, f.project, f.version, f.kind, f.origin.value, f.state.value, f.sha256,
            f.size, f.requires_python, f.metadata_sha256, f.upload_time, f.yanked,
            f.upstream_url, f.upstream_sha256, findings_to_json(f.findings), f.decided_at,
            f.decided_by, f.hold_until, f.fetch_seconds, f.inspect_seconds)


class IndexStorage:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        with self.db.transaction() as tx:
            for stmt in _DDL.format(**_TYPES[self.db.dialect]).split(";"):
                if stmt.strip():
                    tx.execute(stmt.strip())
            # gc keeps every blob these columns name.
            tx.executemany("INSERT INTO blob_roots (name, tbl, col) VALUES (?, ?, ?) "
                           "ON CONFLICT (name) DO NOTHING",
                           [("index", "index_files", "sha256"),
                            ("index-metadata", "index_files", "metadata_sha256")])

    # ------------------------------------------------------------------ files

    def get(self, filename: str) -> IndexFile | None:
        rows = self.db.read(f"SELECT {_COLS} FROM index_files WHERE filename = ?", (filename,))
        return _row(rows[0]) if rows else None

    def files(self, project: str, states: Sequence[State] | None = None) -> list[IndexFile]:
        sql = f"SELECT {_COLS} FROM index_files WHERE project = ?"
        params: list[Any] = [project]
        if states:
            sql += " AND state IN (" + ", ".join("?" for _ in states) + ")"
            params += [s.value for s in states]
        return [_row(r) for r in self.db.read(sql + " ORDER BY filename", params)]

    def by_state(self, state: State) -> list[IndexFile]:
        return [_row(r) for r in self.db.read(
            f"SELECT {_COLS} FROM index_files WHERE state = ? ORDER BY project, filename",
            (state.value,))]

    def all_files(self) -> list[IndexFile]:
        return [_row(r) for r in self.db.read(
            f"SELECT {_COLS} FROM index_files ORDER BY project, filename")]

    def projects(self) -> list[str]:
        """Projects with at least one served file."""
        return [str(r[0]) for r in self.db.read(
            "SELECT DISTINCT project FROM index_files WHERE state = 'admitted' "
            "ORDER BY project")]

    def record(self, f: IndexFile, *, replace: bool = False) -> IndexFile:
        """Insert a decision, or replace the previous one when ``replace``.

        Admitted bytes are immutable: a row that is admitted with one sha256 never
        changes to other bytes, whoever asks.
        """
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT state, sha256 FROM index_files WHERE filename = ?",
                              (f.filename,))
            if rows:
                state, sha = rows[0]
                if state == State.ADMITTED.value and sha and f.sha256 and sha != f.sha256:
                    raise ConflictError(f"{f.filename} is already admitted with other "
                                        "content; admitted files are immutable")
                if not replace:
                    raise ConflictError(f"{f.filename} already exists in the index")
                tx.execute("DELETE FROM index_files WHERE filename = ?", (f.filename,))
            tx.execute(f"INSERT INTO index_files ({_COLS}) VALUES "
                       f"({', '.join('?' for _ in range(20))})", _values(f))
        return f

    def set_yanked(self, filename: str, reason: str | None) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE index_files SET yanked = ? WHERE filename = ?",
                       (reason, filename))

    # ------------------------------------------------------------------ blobs

    def ingest(self) -> Ingest:
        """A write session: blobs put in it are leased (safe from gc) until it ends, so
        the file row must be recorded inside it."""
        return self.store.ingest()

    @staticmethod
    def put_blob(session: Ingest, path: Path, name: str) -> str:
        """Move a quarantined file into the store's blobs; returns its sha256."""
        return session.put_file(path, name, move=True).sha256

    def read_blob(self, sha256: str, limit: int = 16 << 20) -> bytes:
        with self.store.open_blob(sha256) as r:
            data = r.read(limit + 1)
        if len(data) > limit:
            raise StoreError(f"blob {sha256} is larger than {limit} bytes")
        return data

    def blob_size(self, sha256: str) -> int:
        return self.store.blobs.size(sha256)

    def has_blob(self, sha256: str) -> bool:
        return self.store.blobs.exists(sha256)

    def quarantine(self) -> AbstractContextManager[Path]:
        return self.store.staging()

    def admission_lock(self, filename: str) -> AbstractContextManager[None]:
        """One admission per file at a time, across processes (and hosts on PostgreSQL);
        a killed holder's lock is released by the kernel or the server."""
        return self.store.lock(f"index-admit:{filename}")

    # ------------------------------------------------------------------ upstream cache

    def page(self, project: str) -> tuple[float, int, Any] | None:
        rows = self.db.read("SELECT fetched_at, status, body FROM index_pages WHERE project = ?",
                            (project,))
        if not rows:
            return None
        return float(rows[0][0]), int(rows[0][1]), json.loads(rows[0][2])

    def put_page(self, project: str, status: int, body: Any) -> None:
        text = json.dumps(body)
        with self.db.transaction(lock=False) as tx:
            tx.execute("INSERT INTO index_pages (project, fetched_at, status, body) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (project) DO UPDATE SET "
                       "fetched_at = excluded.fetched_at, status = excluded.status, "
                       "body = excluded.body", (project, time.time(), status, text))

    def file_facts(self, url: str) -> tuple[float | None, int | None] | None:
        """(upload time, size) learned for an upstream file URL, or None if never asked."""
        rows = self.db.read("SELECT at, size FROM index_file_facts WHERE url = ?", (url,))
        if not rows:
            return None
        return (None if rows[0][0] is None else float(rows[0][0]),
                None if rows[0][1] is None else int(rows[0][1]))

    def put_file_facts(self, url: str, at: float | None, size: int | None) -> None:
        with self.db.transaction(lock=False) as tx:
            tx.execute("INSERT INTO index_file_facts (url, at, size) VALUES (?, ?, ?) "
                       "ON CONFLICT (url) DO UPDATE SET at = excluded.at, "
                       "size = excluded.size", (url, at, size))

    # ------------------------------------------------------------------ confusion

    def record_confusion(self, projects: Sequence[str], upstream: str) -> list[str]:
        """Remember upstream projects with internal names; returns the newly seen ones."""
        now = time.time()
        new: list[str] = []
        with self.db.transaction(lock=False) as tx:
            for p in projects:
                if tx.execute("SELECT 1 FROM index_confusion WHERE project = ?", (p,)):
                    tx.execute("UPDATE index_confusion SET last_seen = ?, upstream = ? "
                               "WHERE project = ?", (now, upstream, p))
                else:
                    tx.execute("INSERT INTO index_confusion (project, upstream, first_seen, "
                               "last_seen) VALUES (?, ?, ?, ?)", (p, upstream, now, now))
                    new.append(p)
        return new

    def confusion(self) -> list[tuple[str, str, float, float]]:
        return [(str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in self.db.read(
            "SELECT project, upstream, first_seen, last_seen FROM index_confusion "
            "ORDER BY project")]

    def iter_referenced_blobs(self) -> Iterator[str]:
        """Blobs the index still needs (for a store garbage collector)."""
        for r in self.db.read("SELECT sha256 FROM index_files WHERE sha256 IS NOT NULL "
                              "UNION SELECT metadata_sha256 FROM index_files "
                              "WHERE metadata_sha256 IS NOT NULL"):
            yield str(r[0])

