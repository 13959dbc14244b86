"""``store gc``: remove blobs that nothing references, safely beside running imports.

Mark and sweep with two independent guards for writers in flight:

* **leases**: every write session leases its blobs (``blob_leases``) after verifying them
  and before they become visible, until their commit exists; a lease is a root;
* **grace period**: an unreferenced blob written (or re-written) less than ``grace``
  seconds ago is kept, whoever wrote it.

Roots are the ``files`` table (every commit, approved or not), live leases, and any
table another component registered in ``blob_roots``. A blob is deleted only after it
is checked again inside a locked transaction, the same lock every lease and commit takes,
so nothing can reference it between that check and the delete. Temporary uploads and
staging directories older than the grace period are removed too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mlwarden.store.blobs import BlobInfo, UploadInfo
from mlwarden.store.db import Row
from mlwarden.store.errors import StoreError
from mlwarden.store.store import STAGE_PREFIX, Store

BATCH = 100  # blobs re-checked and deleted per locked transaction
UPLOAD_GRACE = 24 * 3600.0
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class GcResult:
    dry_run: bool
    grace: float
    removed: tuple[BlobInfo, ...]  # would be removed, with dry_run
    referenced: int  # blobs kept because a root names them
    young: int  # unreferenced, kept for the grace period
    rescued: int  # candidates that became referenced or leased before their delete
    uploads: tuple[UploadInfo, ...] = ()
    stages: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bytes_freed(self) -> int:
        return sum(b.size for b in self.removed) + sum(u.size for u in self.uploads)

    def to_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "grace_seconds": self.grace,
                "removed": [{"sha256": b.sha256, "size": b.size,
                             "age_seconds": round(time.time() - b.modified)}
                            for b in self.removed],
                "uploads": [{"name": u.name, "size": u.size} for u in self.uploads],
                "stages": list(self.stages), "kept_referenced": self.referenced,
                "kept_young": self.young, "rescued": self.rescued,
                "bytes_freed": self.bytes_freed, "errors": list(self.errors)}


def root_tables(store: Store) -> list[tuple[str, str]]:
    """(table, column) pairs naming referenced sha256s; refuses unknown or bad entries."""
    roots = [("files", "sha256")]
    for name, tbl, col in store.db.read("SELECT name, tbl, col FROM blob_roots ORDER BY name"):
        if not (_IDENT.fullmatch(str(tbl)) and _IDENT.fullmatch(str(col))):
            raise StoreError(f"blob root {name!r} names an invalid table or column")
        try:
            store.db.read(f"SELECT {col} FROM {tbl} WHERE 1 = 0")
        except StoreError as exc:
            raise StoreError(f"blob root {name!r} ({tbl}.{col}) cannot be read, so gc "
                             f"cannot know what it references: {exc}") from None
        roots.append((str(tbl), str(col)))
    return roots


def _referenced(store: Store, roots: list[tuple[str, str]]) -> set[str]:
    shas: set[str] = set()
    for tbl, col in roots:
        shas.update(str(r[0]) for r in store.db.read(f"SELECT DISTINCT {col} FROM {tbl}"))
    shas.update(str(r[0]) for r in store.db.read(
        "SELECT sha256 FROM blob_leases WHERE expires_at > ?", (time.time(),)))
    return shas


def _still_unreferenced(execute: Callable[[str, list[object]], list[Row]],
                        roots: list[tuple[str, str]],
                        batch: list[BlobInfo]) -> list[BlobInfo]:
    marks = ", ".join("?" for _ in batch)
    shas = [b.sha256 for b in batch]
    held: set[str] = set()
    for tbl, col in roots:
        held.update(str(r[0]) for r in execute(
            f"SELECT {col} FROM {tbl} WHERE {col} IN ({marks})", list(shas)))
    held.update(str(r[0]) for r in execute(
        f"SELECT sha256 FROM blob_leases WHERE expires_at > ? AND sha256 IN ({marks})",
        [time.time(), *shas]))
    return [b for b in batch if b.sha256 not in held]


def collect(store: Store, grace: float = 3600.0, dry_run: bool = False,
            progress: Callable[[str], None] | None = None,
            upload_grace: float = UPLOAD_GRACE) -> GcResult:
    """One gc pass (one at a time per store: a second one gets LockTimeout). Temporary
    uploads are removed only after ``upload_grace`` (a large upload can take hours; a
    live local one is also protected by its writer's lock)."""
    if grace < 0 or upload_grace < 0:
        raise StoreError("the grace period cannot be negative")
    say = progress or (lambda _msg: None)
    with store.lock("gc", timeout=0):
        roots = root_tables(store)
        # List first, then mark: a blob listed before the mark is either referenced by
        # then, or will be checked again under the lock before it goes.
        say("listing blobs")
        listed = list(store.blobs.iter_all())
        say(f"{len(listed)} blobs; reading references")
        referenced = _referenced(store, roots)
        now = time.time()
        unref = [b for b in listed if b.sha256 not in referenced]
        young = [b for b in unref if now - b.modified < grace]
        old = sorted((b for b in unref if now - b.modified >= grace), key=lambda b: b.sha256)
        removed: list[BlobInfo] = []
        errors: list[str] = []
        rescued = 0
        for i in range(0, len(old), BATCH):
            batch = old[i:i + BATCH]
            if dry_run:
                gone = _still_unreferenced(store.db.read, roots, batch)
                rescued += len(batch) - len(gone)
                removed += gone
                continue
            with store.db.transaction() as tx:  # no lease or commit can land meanwhile
                gone = _still_unreferenced(tx.execute, roots, batch)
                rescued += len(batch) - len(gone)
                for b in gone:
                    try:
                        if store.blobs.delete(b.sha256):
                            removed.append(b)
                    except StoreError as exc:
                        errors.append(f"{b.sha256}: {exc}")
            say(f"removed {len(removed)} of {len(old)}")
        uploads = tuple(_old_uploads(store, now, upload_grace, dry_run, errors))
        stages = tuple(_old_stages(store, now, grace, dry_run))
        return GcResult(dry_run, grace, tuple(removed), len(listed) - len(unref), len(young),
                        rescued, uploads, stages, tuple(errors))


def _old_uploads(store: Store, now: float, grace: float, dry_run: bool,
                 errors: list[str]) -> Iterable[UploadInfo]:
    for u in list(store.blobs.iter_uploads()):
        if now - u.modified < grace:
            continue
        if not dry_run:
            try:
                if not store.blobs.discard_upload(u.name):
                    continue  # finished, or still being written
            except StoreError as exc:
                errors.append(f"upload {u.name}: {exc}")
                continue
        yield u


def _old_stages(store: Store, now: float, grace: float, dry_run: bool) -> Iterable[str]:
    """Staging directories left by killed processes: old, and their lock is free."""
    try:
        entries = list(os.scandir(store.tmp))
    except FileNotFoundError:
        return
    for e in entries:
        if not e.name.startswith(STAGE_PREFIX) or not e.is_dir(follow_symlinks=False):
            continue
        try:
            if now - e.stat(follow_symlinks=False).st_mtime < grace:
                continue
            fd = os.open(f"{e.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its owner is alive
        try:
            if not dry_run:
                shutil.rmtree(e.path, ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.unlink(f"{e.path}.lock")
            yield e.name
        finally:
            os.close(fd)
