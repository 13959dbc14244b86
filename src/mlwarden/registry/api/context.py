"""What every write-API handler shares: settings, the store's write side, access checks,
request bodies read from a worker thread, and audit entries."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from starlette.requests import ClientDisconnect, Request

from mlwarden.policy import Policy
from mlwarden.registry.audit import AuditWriter
from mlwarden.registry.responses import HubError
from mlwarden.scancache.cache import ScanCache
from mlwarden.store import AuditEntry, Store, StoreError
from mlwarden.store.errors import InvalidName
from mlwarden.store.names import check_repo_id
from mlwarden.store.push import PushStore
from mlwarden.store.tokens import TokenInfo

MiB = 1 << 20
UPLOAD_MODES = ("inline", "lfs")


@dataclass(frozen=True)
class WriteSettings:
    """Write API and console settings (``mlwarden serve`` options)."""

    enabled: bool = True  # the write API; ``--read-only`` turns it off
    console: bool = True
    policy: Policy = field(default_factory=Policy)
    # What preupload answers. "inline": every file goes base64 inside the commit request, the
    # one transfer every huggingface_hub 2.x client uses whether or not hf_xet is installed.
    # "lfs": files the Hub would put in LFS go through the LFS batch API (basic or multipart
    # PUTs); clients with hf_xet installed then need HF_HUB_DISABLE_XET=1.
    upload_mode: str = "inline"
    public_url: str | None = None  # base URL clients use (behind a TLS proxy)
    max_object_bytes: int = 1 << 40
    max_commit_bytes: int = 1 << 41
    max_operations: int = 100_000
    max_json_bytes: int = 8 * MiB  # preupload, LFS batch and other JSON bodies
    multipart_threshold: int = 64 * MiB
    multipart_chunk: int = 32 * MiB
    upload_url_ttl: float = 24 * 3600.0
    quarantine_max_age: float = 7 * 24 * 3600.0
    idle_timeout: float = 120.0  # seconds a client may pause mid-body
    scan_cache: Path | None = None  # default STORE/cache/scan
    session_lifetime: float = 8 * 3600.0
    session_idle: float = 3600.0

    def __post_init__(self) -> None:
        if self.upload_mode not in UPLOAD_MODES:
            raise ValueError(f"upload_mode must be one of {', '.join(UPLOAD_MODES)}")
        if self.multipart_chunk < 5 * MiB and self.multipart_chunk < self.multipart_threshold:
            pass  # small chunks are allowed (tests); S3-style minimums do not apply here


@dataclass
class Principal:
    actor: str  # token:<name>/<id>
    token: TokenInfo
    identity: str  # the token's owner


@dataclass
class WriteCall:
    """One write request, filled in as it is understood, then audited."""

    method: str
    client: str
    action: str = "write"
    actor: str = "anonymous"
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    path: str | None = None
    nbytes: int = 0
    notes: list[str] = field(default_factory=list)

    def entry(self, status: int, detail: str = "") -> AuditEntry:
        notes = [*self.notes, detail] if detail else self.notes
        return AuditEntry(time.time(), self.actor, self.client, self.method, self.action,
                          self.repo, self.revision, self.commit, self.path, status, self.nbytes,
                          "; ".join(n for n in notes if n))


class WriteContext:
    def __init__(self, store: Store, write: WriteSettings) -> None:
        from mlwarden.registry.api.quarantine import Quarantine

        self.store = store
        self.write = write
        self._audit: AuditWriter | None = None
        self._authenticate: Callable[..., Any] | None = None
        self.push = PushStore.open(store)
        self.quarantine = Quarantine(store, write.max_object_bytes)
        self.cache = ScanCache(write.scan_cache or store.root / "cache" / "scan")
        self._swept = 0.0

    def bind(self, authenticate: Callable[..., Any], audit: AuditWriter) -> None:
        """The read API's token check and audit writer (from the application's state)."""
        self._authenticate = authenticate
        self._audit = audit

    @property
    def audit(self) -> AuditWriter:
        if self._audit is None:
            raise StoreError("the write API is not mounted in a registry application")
        return self._audit

    # -------------------------------------------------------------- identity

    def principal(self, authorization: str | None, call: WriteCall) -> Principal:
        """The token behind a write request; writes never run anonymously."""
        from mlwarden.registry.app import Call

        if self._authenticate is None:
            raise StoreError("the write API is not mounted in a registry application")
        c = Call(call.method, call.client)
        p = self._authenticate(authorization, c)
        call.actor = c.actor
        call.notes += c.notes
        if p.token is None:
            raise HubError(401, None, "Invalid credentials: a registry token with write access "
                           "is required", {"WWW-Authenticate": 'Bearer realm="mlwarden"'},
                           audit="denied")
        return Principal(c.actor, p.token, self.push.owner(p.token.id, p.token.name))

    def need(self, p: Principal, repo: str, access: str, call: WriteCall) -> None:
        """Refuse unless the token has ``access`` on ``repo``. A token that cannot even read
        the repository learns nothing about it (404, like the read API)."""
        try:
            check_repo_id(repo)
        except InvalidName as exc:
            raise HubError(400, None, str(exc), audit="bad-request") from None
        call.repo = repo
        if p.token.can(repo, access):
            return
        if p.token.can_read(repo):
            raise HubError(403, None, f"token {p.token.name!r} has no {access} access to {repo} "
                           f"(scopes: {' '.join(map(str, p.token.scopes))})", audit="denied")
        raise HubError(404, "RepoNotFound", "Repository not found", audit="denied")

    def repo_exists(self, repo: str) -> None:
        if self.store.repo(repo) is None:
            raise HubError(404, "RepoNotFound", "Repository not found", audit="not-found")

    # -------------------------------------------------------------- misc

    def base_url(self, request: Request) -> str:
        if self.write.public_url:
            return self.write.public_url.rstrip("/")
        host = request.headers.get("host") or "localhost"
        return f"{request.url.scheme}://{host}"

    def sweep(self) -> None:
        """Drop abandoned uploads now and then (at most every ten minutes)."""
        now = time.time()
        if now - self._swept > 600:
            self._swept = now
            self.quarantine.sweep(self.write.quarantine_max_age)


class BodyReader:
    """The request body, read synchronously from a worker thread (``anyio.to_thread``).

    Each read waits at most ``idle_timeout`` for the next chunk, and the whole body is
    bounded by ``limit``: a slow or endless upload ends with 408 or 413, not a stuck thread.
    """

    def __init__(self, request: Request, limit: int, idle_timeout: float) -> None:
        self._it: AsyncIterator[bytes] = request.stream().__aiter__()
        self.limit = limit
        self.idle = idle_timeout
        self.total = 0
        self.done = False

    async def _next(self) -> bytes:
        try:
            with anyio.fail_after(self.idle):
                return await self._it.__anext__()
        except StopAsyncIteration:
            return b""
        except TimeoutError:
            raise HubError(408, None, "request body stalled", audit="bad-request") from None
        except ClientDisconnect:
            raise HubError(400, None, "client disconnected during the upload",
                           audit="bad-request") from None

    def chunk(self) -> bytes:
        if self.done:
            return b""
        while True:
            data = anyio.from_thread.run(self._next)
            if not data:
                self.done = True
                return b""
            self.total += len(data)
            if self.total > self.limit:
                raise HubError(413, None, f"request body larger than {self.limit} bytes",
                               audit="bad-request")
            return data

    def read(self, _n: int = -1) -> bytes:
        return self.chunk()

    def read_all(self) -> bytes:
        parts = []
        while chunk := self.chunk():
            parts.append(chunk)
        return b"".join(parts)
