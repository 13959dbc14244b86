"""What the registry reads from the store on each request, cached between access changes.

Every transaction that changes who may see what (approval, revocation, gating, tokens)
writes a new *access epoch* into the database. Each serving process polls it every
``poll_interval`` seconds (one indexed read) and drops its caches when it changes, so a
revocation reaches every replica on every host within ``poll_interval`` plus one request.
Cached answers are used only while the last successful poll is at most ``max_staleness``
seconds old: if the database cannot be reached, requests go to it directly (and fail
closed) rather than serve stale rights. Commit file tables never change and are kept
across epochs.

The same poller checks the blob backend, which is what ``/readyz`` reports.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from mlwarden.store import Commit, FileEntry, Ref, RepoInfo, Store
from mlwarden.store.errors import StoreError
from mlwarden.store.tokens import TokenInfo

T = TypeVar("T")
MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str
    blobs: str
    draining: bool


_CACHED_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("mlwarden_cached_only",
                                                                  default=False)


class CacheMiss(Exception):
    """Raised in ``cached_only()`` mode where an answer would need the database."""


class _Raise:
    """A cached exception (a negative answer such as RevisionNotFound)."""

    def __init__(self, exc: StoreError) -> None:
        self.exc = exc


class AccessView:
    def __init__(self, store: Store, *, poll_interval: float = 1.0,
                 max_staleness: float = 5.0, cache: bool = True,
                 blob_check_interval: float = 10.0) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.cache_enabled = cache
        self.blob_check_interval = blob_check_interval
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._files: dict[tuple[str, str], dict[str, FileEntry]] = {}
        self._epoch: str | None = None
        self._polled_at = 0.0  # monotonic time of the last successful poll
        self._db_error = "not polled yet"
        self._blob_error: str | None = "not checked yet"
        self._blob_checked_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.draining = False
        store.on_access_change(self.invalidate)  # this process's own writes: at once

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._epoch = f"local:{uuid.uuid4().hex}"  # answers loaded before now: dropped

    # ------------------------------------------------------------------ polling

    def start(self) -> None:
        """Poll in the background from now on (the first poll at once); until it has
        answered, requests read the database directly."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlwarden-access",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        wait = 0.0
        while not self._stop.wait(wait):
            wait = self.poll_interval
            try:
                self.poll_once()
            except Exception as exc:  # the poller must outlive any surprise
                self._db_error = f"access poll failed: {exc}"
                print(f"mlwarden: access poll failed: {exc}", file=sys.stderr)

    def poll_once(self) -> None:
        try:
            epoch, blobs_url = self.store.poll_state()
            if self.store.refresh_blobs(blobs_url):  # a migration moved the blobs
                self._blob_checked_at = 0.0
        except StoreError as exc:
            self._db_error = str(exc)
        else:
            with self._lock:
                if epoch != self._epoch:
                    self._cache.clear()
                    self._epoch = epoch
                self._polled_at = time.monotonic()
            self._db_error = ""
        now = time.monotonic()
        if now - self._blob_checked_at >= self.blob_check_interval or self._blob_error:
            try:
                self.store.blobs.check()
                self._blob_error = None
            except StoreError as exc:
                self._blob_error = str(exc)
            self._blob_checked_at = now

    def readiness(self) -> Readiness:
        fresh = time.monotonic() - self._polled_at <= self.max_staleness
        db = "ok" if fresh and not self._db_error else (self._db_error or "stale")
        blobs = "ok" if self._blob_error is None else self._blob_error
        return Readiness(fresh and not self._db_error and self._blob_error is None
                         and not self.draining, db, blobs, self.draining)

    # ------------------------------------------------------------------ cache

    def _fresh(self) -> bool:
        return self.cache_enabled and \
            time.monotonic() - self._polled_at <= self.max_staleness

    @contextlib.contextmanager
    def cached_only(self) -> Iterator[None]:
        """Answer from the cache or raise CacheMiss: lets the event loop answer a request
        itself, without a thread, whenever no database read is needed."""
        token = _CACHED_ONLY.set(True)
        try:
            yield
        finally:
            _CACHED_ONLY.reset(token)

    @staticmethod
    def needs_thread() -> None:
        """Call before work that may block (network, credential refresh): in
        ``cached_only()`` mode it sends the request to a worker thread."""
        if _CACHED_ONLY.get():
            raise CacheMiss()

    def _get(self, key: tuple[Any, ...], load: Callable[[], T]) -> T:
        if not self._fresh():
            if _CACHED_ONLY.get():
                raise CacheMiss()
            return load()
        with self._lock:
            epoch = self._epoch
            hit = self._cache.get(key, self)
        if hit is not self:
            if isinstance(hit, _Raise):
                raise hit.exc
            return hit  # type: ignore[no-any-return]
        if _CACHED_ONLY.get():
            raise CacheMiss()
        try:
            value: Any = load()
        except StoreError as exc:
            if not _cacheable(exc):
                raise
            value = _Raise(exc)
        with self._lock:
            if self._epoch == epoch:  # an epoch change meanwhile: do not keep old answers
                if len(self._cache) >= MAX_ENTRIES:
                    self._cache.clear()
                self._cache[key] = value
        if isinstance(value, _Raise):
            raise value.exc
        return value  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ reads

    def verify_token(self, text: str) -> TokenInfo | None:
        key = ("token", hashlib.sha256(text.encode("utf-8", "replace")).digest())
        info = self._get(key, lambda: self._token_any_state(text))
        return info if info is not None and info.active(time.time()) else None

    def _token_any_state(self, text: str) -> TokenInfo | None:
        # Cache the row even when it expires later: active() is checked on every use.
        return self.store.verify_token(text, now=0.0)

    def visible_repo(self, repo: str) -> RepoInfo | None:
        return self._get(("visible", repo), lambda: self.store.visible_repo(repo))

    def repo(self, repo: str) -> RepoInfo | None:
        return self._get(("repo", repo), lambda: self.store.repo(repo))

    def resolve(self, repo: str, revision: str) -> Commit:
        return self._get(("resolve", repo, revision),
                         lambda: self.store.resolve(repo, revision))

    def refs(self, repo: str) -> list[Ref]:
        return self._get(("refs", repo), lambda: self.store.refs(repo))

    def _table(self, repo: str, cid: str) -> dict[str, FileEntry]:
        key = (repo, cid)
        with self._lock:
            hit = self._files.get(key)
        if hit is not None:
            return hit
        if _CACHED_ONLY.get():
            raise CacheMiss()
        table = {f.path: f for f in self.store.files(repo, cid)}
        if table:  # a commit's file table never changes once it exists
            with self._lock:
                if len(self._files) >= 4096:
                    self._files.clear()
                self._files[key] = table
        return table

    def files(self, repo: str, cid: str) -> list[FileEntry]:
        return list(self._table(repo, cid).values())  # stored in path order

    def file(self, repo: str, cid: str, path: str) -> FileEntry | None:
        return self._table(repo, cid).get(path)


def _cacheable(exc: StoreError) -> bool:
    from mlwarden.store.errors import EntryNotFound, RepoNotFound, RevisionNotFound

    return isinstance(exc, (RepoNotFound, RevisionNotFound, EntryNotFound))
