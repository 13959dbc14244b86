"""Hub-style error answers and the blob response (HEAD, GET, single Range).

The blob response streams 1 MiB ``pread`` chunks from a thread, never loading a file into
memory, stops reading as soon as the client disconnects, and reports how many body bytes
it handed to the server, which is what the audit log records.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import anyio
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from mlwarden.store.blobs import BlobBackend
from mlwarden.store.errors import StoreError

CHUNK = 1 << 20
_RANGE_RE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class HubError(Exception):
    """An answer the real clients map to an exception: X-Error-Code decides which."""

    def __init__(self, status: int, code: str | None, message: str,
                 headers: Mapping[str, str] | None = None, audit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.audit = audit  # "denied" marks an access-control decision in the audit log

    def response(self) -> Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


class RangeError(HubError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end inclusive); None for the whole file.

    Malformed or multi-range headers get 400 and unsatisfiable ones 416, rather than a
    silent 200: a client that asked for part of a file must not get another part.
    """
    if header is None:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise RangeError(400, None, "malformed Range header (one 'bytes=a-b' range supported)")
    first, last = m.group(1), m.group(2)
    unsatisfiable = RangeError(416, None, "requested range not satisfiable",
                               {"Content-Range": f"bytes */{size}"})
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        raise RangeError(400, None, "malformed Range header (end before start)")
    if start >= size:
        raise unsatisfiable
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


class BlobResponse(Response):
    def __init__(self, blobs: BlobBackend, sha256: str, size: int,
                 headers: Mapping[str, str], head: bool,
                 byte_range: tuple[int, int] | None,
                 on_done: Callable[[int, int], None]) -> None:
        self.blobs = blobs
        self.sha256 = sha256
        self.size = size
        self.head = head
        self.byte_range = byte_range
        self.on_done = on_done
        self.status_code = 206 if byte_range else 200
        hdrs = {**headers, "Accept-Ranges": "bytes"}
        if byte_range:
            start, end = byte_range
            hdrs["Content-Range"] = f"bytes {start}-{end}/{size}"
            hdrs["Content-Length"] = str(end - start + 1)
        else:
            hdrs["Content-Length"] = str(size)
        self.body = b""
        self.background = None
        self.init_headers(hdrs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = 0
        start, end = self.byte_range or (0, self.size - 1)
        remaining = end - start + 1 if self.size else 0
        try:
            reader = await anyio.to_thread.run_sync(
                self.blobs.open_range, self.sha256, start, remaining)
        except StoreError:
            self.status_code = 500
            await Response("blob missing from the store", 500)(scope, receive, send)
            self.on_done(500, 0)
            return
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            if self.head or remaining == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while True:
                        message: Message = await receive()
                        if message["type"] == "http.disconnect":
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_disconnect)
                while remaining > 0:
                    chunk = await anyio.to_thread.run_sync(reader.read, min(CHUNK, remaining))
                    if not chunk:  # the blob shrank: never pad, let the length check fail
                        break
                    remaining -= len(chunk)
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": remaining > 0})
                    sent += len(chunk)
                tg.cancel_scope.cancel()
        finally:
            reader.close()
            self.on_done(self.status_code, sent)
