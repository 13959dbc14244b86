"""Running the registry under uvicorn with production settings.

uvicorn's h11 protocol bounds the size of a request head (``h11_max_incomplete_event_size``)
and closes idle keep-alive connections (``timeout_keep_alive``), but it has no deadline
for receiving a request head: a client trickling one header byte at a time holds its
connection forever, because every byte cancels the keep-alive timer. ``GuardedH11``
adds that deadline and answers 408 when it expires.

It also offers the ASGI zero-copy send extension (``http.response.zerocopysend``): a file
response hands the server an open file, and the kernel moves its pages to the socket with
``sendfile(2)`` (asyncio's ``loop.sendfile``), so file bytes never pass through Python.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

ZEROCOPY = "http.response.zerocopysend"


class _Length:
    """Stands for ``n`` body bytes in h11's bookkeeping; the bytes go by sendfile."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class ZeroCopyCycle(RequestResponseCycle):
    """uvicorn's request cycle plus ``http.response.zerocopysend`` (fixed-length responses:
    the blob response always declares Content-Length)."""

    async def send(self, message: Any) -> None:
        if message.get("type") != ZEROCOPY:
            await super().send(message)
            return
        if self.disconnected:
            return
        if not self.response_started or self.response_complete:
            raise RuntimeError("zerocopysend outside a started, incomplete response")
        count = int(message.get("count") or 0)
        if self.flow.write_paused:
            await self.flow.drain()
        if count and self.scope["method"] != "HEAD":
            # h11 accounts for the body (Content-Length framing writes it as is); the
            # pieces it hands back stand for bytes that sendfile writes instead.
            self.conn.send_with_data_passthrough(h11.Data(data=_Length(count)))  # type: ignore[arg-type]
            loop = asyncio.get_running_loop()
            try:
                await loop.sendfile(self.transport, message["file"],
                                    int(message.get("offset") or 0), count)
            except (OSError, RuntimeError):  # client gone, or transport closing
                self.disconnected = True
                self.transport.close()
                return
        if not message.get("more_body", False):
            self.response_complete = True
            self.message_event.set()
            self.transport.write(self.conn.send(event=h11.EndOfMessage()) or b"")
            if self.conn.our_state is h11.MUST_CLOSE or not self.keep_alive:
                self.conn.send(event=h11.ConnectionClosed())
                self.transport.close()
            self.on_response()

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\n"
                     b"content-length: 22\r\nconnection: close\r\n\r\nrequest head too slow\n")


class GuardedH11(H11Protocol):
    """H11Protocol plus a hard deadline for each request head."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a full request head has arrived
            self._cancel_head_timer()

    def handle_events(self) -> None:
        super().handle_events()
        cycle = getattr(self, "cycle", None)
        # A new cycle's task has not run yet: it will see the extension and our send().
        if cycle is not None and type(cycle) is RequestResponseCycle:
            cycle.__class__ = ZeroCopyCycle
            cycle.scope.setdefault("extensions", {})[ZEROCOPY] = {}

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written (pipelining): not a stalled head
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


@dataclass(frozen=True)
class ServerLimits:
    header_timeout: float = 10.0  # whole request head, per request
    keep_alive: int = 5  # idle seconds between requests
    max_head_bytes: int = 16 * 1024  # request line + headers (h11 answers 400 above it)
    max_connections: int = 1024  # beyond this uvicorn answers 503
    graceful_shutdown: int = 30


def make_config(app: Any, host: str, port: int, limits: ServerLimits | None = None,
                log_level: str = "info", access_log: bool = False) -> Any:
    import uvicorn

    limits = limits or ServerLimits()
    protocol = type("GuardedH11Configured", (GuardedH11,),
                    {"header_timeout": limits.header_timeout})
    return uvicorn.Config(
        app, host=host, port=port, http=protocol, loop="asyncio", lifespan="on",
        timeout_keep_alive=limits.keep_alive,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        limit_concurrency=limits.max_connections,
        timeout_graceful_shutdown=limits.graceful_shutdown,
        log_level=log_level, access_log=access_log, server_header=False,
        proxy_headers=False,
    )
