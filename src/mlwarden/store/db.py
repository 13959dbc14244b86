"""The metadata database behind a small interface: SQLite by default, PostgreSQL by URL.

SQL is written once with ``?`` placeholders; the PostgreSQL backend rewrites them. Writes
go through ``transaction()``, which on SQLite takes the write lock up front (BEGIN
IMMEDIATE) so that two processes never deadlock upgrading a read lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from mlwarden.store.errors import StoreError

Row = tuple[Any, ...]
Params = Sequence[Any]

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS repos (
  id TEXT PRIMARY KEY, created_at {real} NOT NULL, default_branch TEXT NOT NULL,
  gated INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS commits (
  repo TEXT NOT NULL REFERENCES repos(id), id TEXT NOT NULL, parent TEXT,
  message TEXT NOT NULL, author TEXT NOT NULL, created_at {real} NOT NULL,
  approved INTEGER NOT NULL DEFAULT 0, branch TEXT NOT NULL,
  requested_tags TEXT NOT NULL DEFAULT '', scan_verdict TEXT, scan_summary TEXT,
  PRIMARY KEY (repo, id));
CREATE TABLE IF NOT EXISTS files (
  repo TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
  size {bigint} NOT NULL, lfs INTEGER NOT NULL, git_oid TEXT NOT NULL,
  PRIMARY KEY (repo, commit_id, path));
CREATE TABLE IF NOT EXISTS refs (
  repo TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, commit_id TEXT NOT NULL,
  updated_at {real} NOT NULL, PRIMARY KEY (repo, name));
CREATE TABLE IF NOT EXISTS approvals (
  id {serial}, repo TEXT NOT NULL, commit_id TEXT NOT NULL, action TEXT NOT NULL,
  ref TEXT, previous TEXT, actor TEXT NOT NULL, at {real} NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL,
  scopes TEXT NOT NULL, created_at {real} NOT NULL, expires_at {real}, revoked_at {real});
CREATE TABLE IF NOT EXISTS audit (
  id {serial}, at {real} NOT NULL, actor TEXT NOT NULL, client TEXT NOT NULL,
  method TEXT NOT NULL, action TEXT NOT NULL, repo TEXT, revision TEXT, commit_id TEXT,
  path TEXT, status INTEGER NOT NULL, bytes {bigint} NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_repo_at ON audit (repo, at);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha256);
CREATE TABLE IF NOT EXISTS blob_leases (
  sha256 TEXT NOT NULL, holder TEXT NOT NULL, expires_at {real} NOT NULL,
  PRIMARY KEY (sha256, holder));
CREATE TABLE IF NOT EXISTS blob_roots (
  name TEXT PRIMARY KEY, tbl TEXT NOT NULL, col TEXT NOT NULL)
"""

_DIALECTS = {
    "sqlite": {"real": "REAL", "bigint": "INTEGER",
               "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {"real": "DOUBLE PRECISION", "bigint": "BIGINT",
                   "serial": "BIGSERIAL PRIMARY KEY"},
}


class Tx(Protocol):
    def execute(self, sql: str, params: Params = ()) -> list[Row]: ...
    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...


class Database(Protocol):
    dialect: str
    url: str

    def read(self, sql: str, params: Params = ()) -> list[Row]: ...

    def transaction(self, lock: bool = True) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction. ``lock=True`` serialises it with every other locked write
        of the store, on every host (what ref moves, commits and gc rely on); appends
        that conflict with nothing (audit, caches) may pass ``lock=False``."""
        ...

    def close(self) -> None: ...


def schema_statements(dialect: str) -> list[str]:
    ddl = _DDL.format(**_DIALECTS[dialect])
    return [s.strip() for s in ddl.split(";") if s.strip()]


# --------------------------------------------------------------------------- SQLite


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.conn.executemany(sql, [tuple(r) for r in rows])


class SqliteDatabase:
    """One connection per thread; WAL so readers never wait for the writer."""

    dialect = "sqlite"

    def __init__(self, path: Path, busy_timeout_ms: int = 30_000) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                                       isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def read(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            return self._conn().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self, lock: bool = True) -> Iterator[Tx]:
        conn = self._conn()  # SQLite has one writer: every write transaction locks
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc
        try:
            yield _SqliteTx(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise StoreError(f"database error: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._all.clear()
        self._local = threading.local()


# --------------------------------------------------------------------------- PostgreSQL


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> list[Row]:
        cur = self.conn.execute(_pg(sql), tuple(params))
        return list(cur.fetchall()) if cur.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), [tuple(r) for r in rows])


class PostgresDatabase:
    """psycopg 3, one connection per thread. Concurrency comes from row locks and the
    advisory lock taken in ``transaction()`` (a store-wide write lock, like SQLite's)."""

    dialect = "postgresql"
    _LOCK_KEY = 0x6D6C7764  # "mlwd"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from exc
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.Error as exc:
                raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def read(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cur = self._conn().execute(_pg(sql), tuple(params))
            return list(cur.fetchall())
        except self._psycopg.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self, lock: bool = True) -> Iterator[Tx]:
        conn = self._conn()
        try:
            with conn.transaction():
                if lock:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._LOCK_KEY,))
                yield _PgTx(conn)
        except self._psycopg.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                with contextlib.suppress(Exception):
                    c.close()
            self._all.clear()
        self._local = threading.local()


def open_database(url: str | None, store_root: Path) -> Database:
    """``None`` or ``sqlite:///path`` -> SQLite; ``postgresql://...`` -> PostgreSQL."""
    if url is None:
        return SqliteDatabase(store_root / "meta.db")
    if url.startswith("sqlite:///"):
        return SqliteDatabase(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StoreError(f"unsupported database URL {url.split(':', 1)[0]!r}: "
                     "use sqlite:///PATH or postgresql://...")


def init_schema(db: Database) -> None:
    with db.transaction() as tx:
        for stmt in schema_statements(db.dialect):
            tx.execute(stmt)
        rows = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        if not rows:
            tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
        elif int(rows[0][0]) > SCHEMA_VERSION:
            raise StoreError(f"store schema {rows[0][0]} is newer than this mlwarden "
                             f"({SCHEMA_VERSION}); upgrade mlwarden")
