"""``store migrate --to URL``: move a store's blobs to another backend while it serves.

Readers never wait: the source is only read while copying, and stays intact until every
process has had time to follow (``--delete-source`` waits that long before removing it).

1. copy every blob the source lists and the target lacks, each one verified against its
   sha256 on the way in; repeat for blobs written meanwhile until a round finds few;
2. inside one locked transaction (the lock every lease and commit takes): copy whatever
   referenced or leased blob is still missing, then record the new location. From that
   instant new processes open the target, serving processes switch at their next poll
   (the access-epoch poll, 1 s), and a writer still holding the old location carries its
   blobs over before its commit is recorded (Store.commit_files);
3. optionally, after the switch delay, delete the source's copies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlwarden.store.blobs import BlobBackend, BlobNotFound, open_blobs, same_location
from mlwarden.store.errors import StoreError
from mlwarden.store.gc import root_tables
from mlwarden.store.store import Store

ROUNDS = 5
FEW = 50  # a round that finds fewer new blobs ends the copying phase


@dataclass(frozen=True)
class MigrateResult:
    source: str
    target: str
    copied: int
    already_there: int
    bytes_copied: int
    deleted_from_source: int

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source.split("?", 1)[0], "target": self.target.split("?", 1)[0],
                "copied": self.copied, "already_there": self.already_there,
                "bytes_copied": self.bytes_copied,
                "deleted_from_source": self.deleted_from_source}


class _Copier:
    def __init__(self, source: BlobBackend, target: BlobBackend, workers: int) -> None:
        self.source = source
        self.target = target
        self.workers = max(1, workers)
        self.done: set[str] = set()
        self.copied = 0
        self.present = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def one(self, sha: str, size: int | None = None) -> None:
        if self.target.exists(sha):
            with self._lock:
                self.present += 1
                self.done.add(sha)
            return
        try:
            if size is None:
                size = self.source.size(sha)
            with self.source.open_range(sha) as r:
                self.target.put_stream(r, expected_sha256=sha, expected_size=size)
        except BlobNotFound:
            return  # removed meanwhile (gc): unreferenced, nothing to carry
        with self._lock:
            self.copied += 1
            self.bytes += size
            self.done.add(sha)

    def many(self, items: Iterable[tuple[str, int | None]]) -> None:
        todo = [(sha, size) for sha, size in items if sha not in self.done]
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=self.workers,
                                thread_name_prefix="migrate") as pool:
            for f in [pool.submit(self.one, sha, size) for sha, size in todo]:
                f.result()  # the first failure stops the migration, with its message


def migrate(store: Store, target_url: str, *, s3_endpoint: str | None = None,
            workers: int = 8, delete_source: bool = False, switch_delay: float = 10.0,
            progress: Callable[[str], None] | None = None) -> MigrateResult:
    say = progress or (lambda _msg: None)
    source = store.blobs
    target = open_blobs(target_url, store.root / "blobs",
                        s3_endpoint=s3_endpoint or store.s3_endpoint)
    if same_location(target.url, source.url):
        raise StoreError(f"the blobs are already at {source.url.split('?', 1)[0]}")
    ensure = getattr(target, "ensure", None)
    if ensure is not None:
        ensure()
    target.check()
    # One migration, and no gc, at a time: gc would race the copy for unreferenced blobs.
    with store.lock("migrate", timeout=0), store.lock("gc", timeout=60):
        copier = _Copier(source, target, workers)
        for n in range(1, ROUNDS + 1):
            todo = [(b.sha256, b.size) for b in source.iter_all()
                    if b.sha256 not in copier.done]
            say(f"round {n}: {len(todo)} blob(s) to copy")
            copier.many(todo)
            if len(todo) < FEW:
                break
        roots = root_tables(store)
        with store.db.transaction() as tx:  # writers wait here for the last few blobs
            needed: set[str] = set()
            for tbl, col in roots:
                needed.update(str(r[0]) for r in tx.execute(f"SELECT DISTINCT {col} FROM {tbl}"))
            needed.update(str(r[0]) for r in tx.execute(
                "SELECT sha256 FROM blob_leases WHERE expires_at > ?", (time.time(),)))
            missing = sorted(needed - copier.done)
            say(f"switching ({len(missing)} last blob(s) copied under the lock)")
            for sha in missing:
                if source.exists(sha):
                    copier.one(sha)
                elif not target.exists(sha):
                    raise StoreError(f"blob {sha} is referenced but in neither location; "
                                     "nothing was switched")
            if same_location(target.url, store.default_blobs_url()):
                tx.execute("DELETE FROM meta WHERE key = 'blobs_url'")
            else:
                tx.execute("INSERT INTO meta (key, value) VALUES ('blobs_url', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                           (target_url,))
        store.blobs = target
    deleted = 0
    if delete_source:
        say(f"waiting {switch_delay:.0f} s for serving processes to switch")
        time.sleep(switch_delay)
        for b in list(source.iter_all()):
            try:
                if target.size(b.sha256) == b.size and source.delete(b.sha256):
                    deleted += 1
            except BlobNotFound:
                continue  # not carried over (unreferenced): leave it to gc
    return MigrateResult(source.url, target.url, copier.copied, copier.present, copier.bytes,
                         deleted)
