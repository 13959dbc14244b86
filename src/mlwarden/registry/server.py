"""Running the registry under uvicorn with production settings.

uvicorn's h11 protocol bounds the size of a request head (``h11_max_incomplete_event_size``)
and closes idle keep-alive connections (``timeout_keep_alive``), but it has no deadline
for receiving a request head: a client trickling one header byte at a time holds its
connection forever, because every byte cancels the keep-alive timer. ``GuardedH11``
adds that deadline and answers 408 when it expires.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

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
