"""Politeness towards remote endpoints: per-endpoint concurrency and rate limits, 429 and
Retry-After, retries with exponential backoff.

A :class:`Limiter` is asked before every request. :class:`LocalLimiter` serves the threads
of one process. A fleet worker uses a :class:`ShareLimiter`: a local limiter holding the
worker's share of the run's concurrency and rate (no round trip per request), plus a
:class:`PauseBoard` shared by every worker (a manager process or a Ray actor) that it
tells about 429s and reads at most once a second, so a Retry-After seen by one worker
pauses them all.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

MAX_RETRY_AFTER = 300.0  # never sleep longer than this on one Retry-After


class Limiter(Protocol):
    def try_acquire(self, endpoint: str) -> float:
        """0.0 when a request may start now (and counts as in flight), else seconds to
        wait before asking again."""
        ...

    def release(self, endpoint: str) -> None: ...

    def pause(self, endpoint: str, seconds: float) -> None:
        """Nobody starts a request to ``endpoint`` for ``seconds`` (a 429's Retry-After)."""
        ...


@dataclass(frozen=True)
class Politeness:
    concurrency: int = 8  # requests in flight per endpoint
    rate: float = 0.0  # requests per second per endpoint; 0 = unlimited
    attempts: int = 5  # tries per request
    backoff: float = 0.5  # first backoff in seconds, doubled per try
    max_backoff: float = 30.0


class LocalLimiter:
    """Token bucket and in-flight count per endpoint, for the threads of one process."""

    def __init__(self, politeness: Politeness | None = None) -> None:
        self.p = politeness or Politeness()
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}
        self._next_slot: dict[str, float] = {}
        self._paused_until: dict[str, float] = {}
        self.pauses = 0

    def try_acquire(self, endpoint: str) -> float:
        now = time.monotonic()
        with self._lock:
            paused = self._paused_until.get(endpoint, 0.0) - now
            if paused > 0:
                return paused
            if self._inflight.get(endpoint, 0) >= self.p.concurrency:
                return 0.005
            if self.p.rate > 0:
                slot = self._next_slot.get(endpoint, now)
                if slot > now:
                    return slot - now
                self._next_slot[endpoint] = max(slot, now) + 1.0 / self.p.rate
            self._inflight[endpoint] = self._inflight.get(endpoint, 0) + 1
            return 0.0

    def release(self, endpoint: str) -> None:
        with self._lock:
            self._inflight[endpoint] = max(0, self._inflight.get(endpoint, 0) - 1)

    def pause(self, endpoint: str, seconds: float) -> None:
        with self._lock:
            self.pauses += 1
            until = time.monotonic() + min(seconds, MAX_RETRY_AFTER)
            self._paused_until[endpoint] = max(self._paused_until.get(endpoint, 0.0), until)

    def paused_for(self, endpoint: str) -> float:
        """Seconds left of the endpoint's pause (0.0: none). Relative, so that processes
        and hosts with other monotonic clocks can share it."""
        with self._lock:
            return max(0.0, self._paused_until.get(endpoint, 0.0) - time.monotonic())


class PauseBoard(Protocol):
    """What every worker of a fleet shares: the endpoints' pauses."""

    def pause(self, endpoint: str, seconds: float) -> None: ...

    def paused_for(self, endpoint: str) -> float: ...


def share(p: Politeness, workers: int) -> Politeness:
    """One worker's part of a run-wide ``concurrency`` and ``rate``."""
    n = max(1, workers)
    return Politeness(concurrency=max(1, -(-p.concurrency // n)), rate=p.rate / n,
                      attempts=p.attempts, backoff=p.backoff, max_backoff=p.max_backoff)


class ShareLimiter:
    """A worker's limiter: its share of the run's limits, enforced locally, and the shared
    pause board, read at most every ``refresh`` seconds per endpoint and told of every
    pause this worker meets."""

    def __init__(self, board: PauseBoard, politeness: Politeness,
                 refresh: float = 1.0) -> None:
        self.local = LocalLimiter(politeness)
        self.board = board
        self.refresh = refresh
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_acquire(self, endpoint: str) -> float:
        now = time.monotonic()
        with self._lock:
            due = now - self._checked.get(endpoint, -self.refresh) >= self.refresh
            if due:
                self._checked[endpoint] = now
        if due:
            left = float(self.board.paused_for(endpoint))
            if left > 0:
                self.local.pause(endpoint, left)
        return self.local.try_acquire(endpoint)

    def release(self, endpoint: str) -> None:
        self.local.release(endpoint)

    def pause(self, endpoint: str, seconds: float) -> None:
        self.local.pause(endpoint, seconds)
        self.board.pause(endpoint, seconds)


_default: LocalLimiter | None = None
_default_lock = threading.Lock()


def default_limiter() -> Limiter:
    global _default
    with _default_lock:
        if _default is None:
            _default = LocalLimiter()
        return _default


_current: Limiter | None = None
_current_policy: Politeness | None = None


def configure(limiter: Limiter | None, politeness: Politeness | None = None) -> None:
    """Install the limiter (and retry policy) every remote request of this process uses."""
    global _current, _current_policy
    _current = limiter
    _current_policy = politeness


def current() -> tuple[Limiter, Politeness]:
    return (_current or default_limiter(), _current_policy or Politeness())


def endpoint_of(url: str) -> str:
    u = urlsplit(url)
    return f"{u.scheme}://{u.netloc}" if u.netloc else url


class RetryableStatus(Exception):
    """An HTTP answer worth retrying (429, 5xx), with its Retry-After if it gave one."""

    def __init__(self, status: int, retry_after: float | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class GaveUp(OSError):
    """A request kept failing; the message says how often and why."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # an HTTP-date: rare, and 6 ms to import

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def classify(exc: BaseException) -> tuple[int | None, float | None, bool]:
    """(HTTP status, Retry-After seconds, transient?) of an exception from any client."""
    if isinstance(exc, RetryableStatus):
        return exc.status, exc.retry_after, True
    resp: Any = getattr(exc, "response", None)
    status: int | None = None
    headers: Any = None
    if resp is not None and hasattr(resp, "status_code"):
        status = int(resp.status_code)
        headers = getattr(resp, "headers", None)
    elif isinstance(resp, dict):  # botocore ClientError
        meta = resp.get("ResponseMetadata") or {}
        status = meta.get("HTTPStatusCode")
        headers = meta.get("HTTPHeaders")
        code = (resp.get("Error") or {}).get("Code")
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"):
            status = 429 if status is None or status < 500 else status
    if status is not None:
        retry_after = None
        if headers is not None:
            retry_after = parse_retry_after(headers.get("retry-after")
                                            or headers.get("Retry-After"))
        return status, retry_after, status in _RETRY_STATUS
    name = type(exc).__name__
    transient = isinstance(exc, (ConnectionError, TimeoutError)) or any(
        w in name for w in ("Timeout", "Connect", "Network", "Transport", "RemoteProtocol",
                            "ReadError", "ServerDisconnected", "ClientOSError"))
    return None, None, transient


def polite_call(endpoint: str, fn: Callable[[], T], what: str) -> T:
    """Run one request under the limiter, retrying transient failures; a 429 pauses the
    endpoint for everyone sharing the limiter. Raises :class:`GaveUp` after the last try,
    or the request's own exception when it is not transient (404, 401, bad data)."""
    limiter, p = current()
    last: BaseException | None = None
    for attempt in range(p.attempts):
        while (wait := limiter.try_acquire(endpoint)) > 0:
            time.sleep(min(wait, 1.0))
        try:
            return fn()
        except Exception as exc:
            status, retry_after, transient = classify(exc)
            if not transient:
                raise
            last = exc
            if attempt + 1 >= p.attempts:
                break
            delay = min(p.max_backoff, p.backoff * (2 ** attempt)) * (0.5 + random.random())
            if status == 429 or (retry_after is not None and status in (503,)):
                limiter.pause(endpoint, retry_after if retry_after is not None else delay)
            else:
                time.sleep(delay)
        finally:
            limiter.release(endpoint)
    status, _, _ = classify(last) if last is not None else (None, None, False)
    why = f"HTTP {status}" if status else f"{type(last).__name__}: {str(last)[:200]}"
    raise GaveUp(f"{what}: gave up after {p.attempts} attempts ({why})")
