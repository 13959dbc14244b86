"""Streaming reader for the Hub's NDJSON commit body.

huggingface_hub sends one JSON object per line: a ``header``, then ``file`` (inline content,
base64), ``lfsFile``, ``deletedFile`` and ``deletedFolder`` operations. An inline file can
be gigabytes (this registry answers ``regular`` to preupload so that clients with hf_xet
still upload), and its ``content`` comes *before* its ``path``. So this is a small JSON
pull parser rather than ``json.loads`` per line: the string at ``value.content`` is base64-
decoded straight into a quarantine file while it streams, every other string is bounded,
and nesting is bounded. Nothing is held in memory beyond one read buffer.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Iterator
from typing import Any, Protocol

READ_SIZE = 1 << 20
MAX_DEPTH = 8
MAX_STRING = 1 << 20  # paths, messages, descriptions
_SPECIAL = re.compile(rb'["\\\x00-\x1f]')
_NUMBER = re.compile(rb"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_ESCAPES = {ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b", ord("f"): "\f",
            ord("n"): "\n", ord("r"): "\r", ord("t"): "\t"}
_WS = b" \t\r\n"
_B64 = re.compile(rb"[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class CommitBodyError(ValueError):
    """The body is not the NDJSON the commit endpoint expects; the message says where."""


class ContentSink(Protocol):
    def feed(self, data: bytes) -> None: ...
    def finish(self) -> object: ...
    def abort(self) -> None: ...


class Base64Sink:
    """Decodes base64 text as it arrives (4-character quanta) into ``write``."""

    def __init__(self, write: Callable[[bytes], None], finish: Callable[[], object],
                 abort: Callable[[], None]) -> None:
        self._write = write
        self._finish = finish
        self._abort = abort
        self._rest = b""
        self._ended = False

    def feed(self, data: bytes) -> None:
        buf = self._rest + data
        cut = len(buf) - len(buf) % 4
        if cut:
            if self._ended:
                raise CommitBodyError("base64 content continues after its padding")
            quanta = buf[:cut]
            if not _B64.fullmatch(quanta):
                raise CommitBodyError("invalid base64 content")
            self._write(binascii.a2b_base64(quanta))
            self._ended = quanta.endswith(b"=")
        self._rest = buf[cut:]

    def finish(self) -> object:
        if self._rest:
            raise CommitBodyError("base64 content length is not a multiple of 4")
        return self._finish()

    def abort(self) -> None:
        self._abort()


class _Parser:
    def __init__(self, read: Callable[[int], bytes], new_sink: Callable[[], ContentSink]) -> None:
        self.read = read
        self.new_sink = new_sink
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.line = 1  # record number, for messages
        self.sinks: list[ContentSink] = []  # content sinks of the current record

    # -------------------------------------------------------------- buffer

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.read(READ_SIZE)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def _ensure(self, n: int) -> bool:
        while len(self.buf) - self.pos < n:
            if not self._fill():
                return False
        return True

    def _peek(self) -> int | None:
        if not self._ensure(1):
            return None
        return self.buf[self.pos]

    def _skip_ws(self) -> None:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                if self.buf[self.pos] == 0x0A:
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf) or not self._fill():
                return

    def _error(self, what: str) -> CommitBodyError:
        return CommitBodyError(f"line {self.line}: {what}")

    def _expect(self, ch: bytes) -> None:
        self._skip_ws()
        c = self._peek()
        if c is None or c != ch[0]:
            got = "end of body" if c is None else repr(chr(c))
            raise self._error(f"expected {ch.decode()!r}, found {got}")
        self.pos += 1

    # -------------------------------------------------------------- values

    def value(self, path: tuple[str, ...], depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self._error("JSON nested too deeply")
        self._skip_ws()
        c = self._peek()
        if c is None:
            raise self._error("unexpected end of body")
        if c == ord("{"):
            return self._object(path, depth)
        if c == ord("["):
            return self._array(path, depth)
        if c == ord('"'):
            if path[-2:] == ("value", "content") and len(path) == 2:
                return self._content_string()
            return self._string()
        for word, val in ((b"true", True), (b"false", False), (b"null", None)):
            if c == word[0]:
                if not self._ensure(len(word)) or \
                        self.buf[self.pos:self.pos + len(word)] != word:
                    raise self._error("invalid literal")
                self.pos += len(word)
                return val
        self._ensure(64)
        m = _NUMBER.match(self.buf, self.pos)
        if m is None:
            raise self._error(f"unexpected character {chr(c)!r}")
        self.pos = m.end()
        text = m.group().decode()
        return float(text) if any(ch in text for ch in ".eE") else int(text)

    def _object(self, path: tuple[str, ...], depth: int) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self._skip_ws()
        if self._peek() == ord("}"):
            self.pos += 1
            return out
        while True:
            self._skip_ws()
            if self._peek() != ord('"'):
                raise self._error("expected an object key")
            key = self._string()
            self._expect(b":")
            if key in out:
                raise self._error(f"duplicate key {key!r}")
            out[key] = self.value((*path, key), depth + 1)
            self._skip_ws()
            c = self._peek()
            if c == ord(","):
                self.pos += 1
                continue
            if c == ord("}"):
                self.pos += 1
                return out
            raise self._error("expected ',' or '}' in an object")

    def _array(self, path: tuple[str, ...], depth: int) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        self._skip_ws()
        if self._peek() == ord("]"):
            self.pos += 1
            return out
        while True:
            out.append(self.value((*path, "[]"), depth + 1))
            self._skip_ws()
            c = self._peek()
            if c == ord(","):
                self.pos += 1
                continue
            if c == ord("]"):
                self.pos += 1
                return out
            raise self._error("expected ',' or ']' in an array")

    def _chars(self, emit: Callable[[bytes], None], bounded: bool) -> None:
        """Consume a string body up to its closing quote, passing UTF-8 bytes to ``emit``."""
        self.pos += 1  # opening quote
        total = 0
        while True:
            if bounded:
                m = _SPECIAL.search(self.buf, self.pos)
                end = m.start() if m else len(self.buf)
            else:  # base64 content: memchr-speed search; the decoder rejects control bytes
                q, b = self.buf.find(b'"', self.pos), self.buf.find(b"\\", self.pos)
                end = min(x for x in (q, b, len(self.buf)) if x >= 0)
                m = _SPECIAL.match(self.buf, end) if end < len(self.buf) else None
            if end > self.pos:
                total += end - self.pos
                if bounded and total > MAX_STRING:
                    raise self._error(f"string longer than {MAX_STRING} bytes")
                emit(self.buf[self.pos:end])
                self.pos = end
            if m is None:
                if not self._fill():
                    raise self._error("unterminated string")
                continue
            c = self.buf[self.pos]
            if c == ord('"'):
                self.pos += 1
                return
            if c != ord("\\"):
                raise self._error("control character inside a string")
            if not self._ensure(2):
                raise self._error("unterminated escape")
            e = self.buf[self.pos + 1]
            if e in _ESCAPES:
                emit(_ESCAPES[e].encode())
                self.pos += 2
            elif e == ord("u"):
                emit(self._unicode_escape().encode("utf-8", "surrogatepass"))
            else:
                raise self._error("invalid escape in a string")

    def _unicode_escape(self) -> str:
        if not self._ensure(6):
            raise self._error("truncated \\u escape")
        try:
            code = int(self.buf[self.pos + 2:self.pos + 6], 16)
        except ValueError:
            raise self._error("invalid \\u escape") from None
        self.pos += 6
        if 0xD800 <= code < 0xDC00 and self._ensure(6) and \
                self.buf[self.pos:self.pos + 2] == b"\\u":
            try:
                low = int(self.buf[self.pos + 2:self.pos + 6], 16)
            except ValueError:
                raise self._error("invalid \\u escape") from None
            if 0xDC00 <= low < 0xE000:
                self.pos += 6
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
        return chr(code)

    def _string(self) -> str:
        parts: list[bytes] = []
        self._chars(parts.append, bounded=True)
        try:
            return b"".join(parts).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self._error("string is not valid UTF-8") from None

    def _content_string(self) -> object:
        sink = self.new_sink()
        self.sinks.append(sink)
        self._chars(sink.feed, bounded=False)
        return sink.finish()

    # -------------------------------------------------------------- records

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            self._skip_ws()
            if self._peek() is None:
                return
            self.sinks = []
            try:
                rec = self.value((), 0)
            except BaseException:
                for s in self.sinks:
                    s.abort()
                raise
            if not isinstance(rec, dict) or not isinstance(rec.get("key"), str) or \
                    not isinstance(rec.get("value"), dict):
                for s in self.sinks:
                    s.abort()
                raise self._error('each line must be {"key": ..., "value": {...}}')
            yield rec["key"], rec["value"]


def read_commit_body(read: Callable[[int], bytes],
                     new_sink: Callable[[], ContentSink]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(key, value)`` per NDJSON record. ``value["content"]`` of a record holds
    whatever ``new_sink().finish()`` returned (the quarantined file); a caller that drops
    a record must release it."""
    return _Parser(read, new_sink).records()
