"""Named writer locks that hold across processes, and across hosts when the database does.

``coordinator_for(db, root).lock("promote:org/name")`` serialises one kind of work:

* SQLite (one host): an ``flock`` on ``STORE/locks/<hash>.lock``;
* PostgreSQL (any number of hosts): a session advisory lock (``pg_advisory_lock``) on a
  connection of its own, so it holds however the caller's other transactions go, and is
  released by the server if the holder dies. Never a file lock on a shared disk.

Short writes need no named lock: ``Database.transaction()`` already serialises them.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from mlwarden.store.db import Database
from mlwarden.store.errors import StoreError
from mlwarden.util.fs import LockedError, file_lock


class LockTimeout(StoreError):
    pass


class Coordinator(Protocol):
    kind: str

    def lock(self, name: str, timeout: float | None = None
             ) -> contextlib.AbstractContextManager[None]:
        """Exclusive for the block; waits up to ``timeout`` seconds (None: forever), then
        raises LockTimeout."""
        ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (PostgreSQL advisory lock space)."""
    return int.from_bytes(hashlib.sha256(b"mlwarden:" + name.encode()).digest()[:8], "big",
                          signed=True)


class FileLocks:
    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        path = self.directory / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock"
        if timeout is None:
            with file_lock(path):
                yield
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                with file_lock(path, blocking=False):
                    yield
                return
            except LockedError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"lock {name!r} is held by another process") from None
                time.sleep(0.05)


class AdvisoryLocks:
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float | None = None) -> Iterator[None]:
        import psycopg

        key = lock_key(name)
        try:
            conn: Any = psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            try:
                if timeout is None:
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                else:
                    deadline = time.monotonic() + timeout
                    while not conn.execute("SELECT pg_try_advisory_lock(%s)",
                                           (key,)).fetchone()[0]:
                        if time.monotonic() >= deadline:
                            raise LockTimeout(f"lock {name!r} is held by another process")
                        time.sleep(0.05)
            except psycopg.Error as exc:
                raise StoreError(f"database error while locking {name!r}: {exc}") from exc
            yield
        finally:
            conn.close()  # ends the session: the server drops the lock with it


def coordinator_for(db: Database, root: Path) -> Coordinator:
    if db.dialect == "postgresql":
        return AdvisoryLocks(db.url)
    return FileLocks(root / "locks")
