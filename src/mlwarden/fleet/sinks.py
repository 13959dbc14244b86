"""Where fleet results go: Parquet files (default) or PostgreSQL tables, one row per
repository and one per file.

Both are resumable. Parquet: results are written in batches, each batch as a files part
and then a repos part, each written to a temporary name and renamed; a batch counts only
once its repos part exists, so a run killed at any instant leaves whole batches and
nothing else (an orphaned files part is removed on the next open). PostgreSQL: one
transaction per batch; the (run, repo) primary key refuses a second row for a repository.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mlwarden.fleet.worker import RepoOutcome

REPO_COLUMNS: dict[str, str] = {
    "repo": "string", "url": "string", "endpoint": "string", "commit": "string",
    "status": "string", "verdict": "string", "reason": "string", "files": "int64",
    "total_bytes": "int64", "bytes_read": "int64", "requests": "int64",
    "cached_files": "int64", "attempts": "int64", "seconds": "float64", "scanner": "string",
    "finished_at": "float64", "verdicts": "string"}
FILE_COLUMNS: dict[str, str] = {
    "repo": "string", "path": "string", "format": "string", "verdict": "string",
    "size": "int64", "sha256": "string", "sha256_source": "string", "cached": "bool_",
    "rules": "string"}


class Sink(Protocol):
    def done(self) -> set[str]:
        """Keys of repositories already recorded."""
        ...

    def write(self, outcomes: Sequence[RepoOutcome]) -> None:
        """Record a batch atomically: all of it, or none of it."""
        ...

    def close(self) -> None: ...


class SinkError(Exception):
    """The results destination cannot be opened or written."""


def open_sink(target: str, run: str = "default") -> Sink:
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresSink(target, run)
    return ParquetSink(Path(target))


# ------------------------------------------------------------------------ Parquet


class ParquetSink:
    def __init__(self, root: Path) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SinkError("Parquet results need pyarrow: pip install 'mlwarden[fleet]'") \
                from None
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"{root}: {exc.strerror or exc}") from None
        committed = {p.name[len("repos-"):-len(".parquet")] for p in root.glob("repos-*.parquet")}
        for p in root.glob("files-*.parquet"):
            if p.name[len("files-"):-len(".parquet")] not in committed:
                p.unlink()  # a batch killed between its two parts
        for p in root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                p.unlink()

    def done(self) -> set[str]:
        import pyarrow.parquet as pq

        keys: set[str] = set()
        for p in sorted(self.root.glob("repos-*.parquet")):
            keys.update(pq.read_table(p, columns=["repo"]).column("repo").to_pylist())
        return keys

    def write(self, outcomes: Sequence[RepoOutcome]) -> None:
        if not outcomes:
            return
        batch = uuid.uuid4().hex
        files = [f for o in outcomes for f in o.files]
        self._write(f"files-{batch}.parquet", files, FILE_COLUMNS)
        self._write(f"repos-{batch}.parquet", [o.repo for o in outcomes], REPO_COLUMNS)

    def _write(self, name: str, rows: list[dict[str, Any]], columns: dict[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(k, getattr(pa, v)()) for k, v in columns.items()])
        table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows],
                                     schema=schema)
        tmp = self.root / f".{name}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / name)
        dfd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def close(self) -> None:
        pass


def read_parquet(root: Path) -> tuple[Any, Any]:
    """(repos table, files table) of a results directory: committed batches only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    committed = sorted(p.name[len("repos-"):-len(".parquet")]
                       for p in root.glob("repos-*.parquet"))

    def load(kind: str, columns: dict[str, str]) -> Any:
        schema = pa.schema([(k, getattr(pa, v)()) for k, v in columns.items()])
        parts = [pq.read_table(root / f"{kind}-{b}.parquet") for b in committed
                 if (root / f"{kind}-{b}.parquet").exists()]
        return pa.concat_tables(parts) if parts else schema.empty_table()

    return load("repos", REPO_COLUMNS), load("files", FILE_COLUMNS)


# ------------------------------------------------------------------------ PostgreSQL

_PG_TYPES = {"string": "TEXT", "int64": "BIGINT", "float64": "DOUBLE PRECISION",
             "bool_": "BOOLEAN"}


class PostgresSink:
    """Tables ``fleet_repos`` and ``fleet_files`` (created when missing), keyed by run."""

    def __init__(self, url: str, run: str) -> None:
        from mlwarden.store.db import open_database
        from mlwarden.store.errors import StoreError

        self.run = run
        try:
            self.db = open_database(url, Path("."))
            repo_cols = ", ".join(f"{k} {_PG_TYPES[v]}" for k, v in REPO_COLUMNS.items())
            file_cols = ", ".join(f"{k} {_PG_TYPES[v]}" for k, v in FILE_COLUMNS.items())
            with self.db.transaction() as tx:
                tx.execute(f"CREATE TABLE IF NOT EXISTS fleet_repos (run TEXT NOT NULL, "
                           f"{repo_cols}, PRIMARY KEY (run, repo))")
                tx.execute(f"CREATE TABLE IF NOT EXISTS fleet_files (run TEXT NOT NULL, "
                           f"{file_cols}, PRIMARY KEY (run, repo, path))")
        except StoreError as exc:
            raise SinkError(f"results database: {exc}") from None

    def done(self) -> set[str]:
        return {r[0] for r in self.db.read("SELECT repo FROM fleet_repos WHERE run = ?",
                                           (self.run,))}

    def write(self, outcomes: Sequence[RepoOutcome]) -> None:
        if not outcomes:
            return
        rk, fk = list(REPO_COLUMNS), list(FILE_COLUMNS)
        with self.db.transaction() as tx:
            fresh = [o for o in outcomes if not tx.execute(
                "SELECT 1 FROM fleet_repos WHERE run = ? AND repo = ?", (self.run, o.key))]
            tx.executemany(
                f"INSERT INTO fleet_repos (run, {', '.join(rk)}) VALUES "
                f"(?, {', '.join('?' * len(rk))})",
                [(self.run, *(o.repo.get(k) for k in rk)) for o in fresh])
            rows = [(self.run, *(f.get(k) for k in fk)) for o in fresh for f in o.files]
            if rows:
                tx.executemany(
                    f"INSERT INTO fleet_files (run, {', '.join(fk)}) VALUES "
                    f"(?, {', '.join('?' * len(fk))})", rows)

    def close(self) -> None:
        self.db.close()
