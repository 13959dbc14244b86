"""A bounded protobuf wire-format walker over a seekable stream.

Why not the generated classes: ``onnx.load`` / ``ParseFromString`` read the whole message
(up to 2 GiB of embedded tensors) into memory, so scan time would grow with tensor bytes.
This walker yields field headers and seeks past payloads it is not asked for; only small
strings (names, op types, paths) are ever read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
WINDOW = 64 << 10
MAX_STRING = 1 << 20  # names and paths longer than this are cut


class WireError(Exception):
    """The bytes are not a well-formed protobuf message (truncated, bad wire type)."""

    def __init__(self, message: str, offset: int, number: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.number = number  # field being read when known


class WireBudget(Exception):
    """More fields than the walker is allowed to visit."""


@dataclass(frozen=True)
class Field:
    number: int
    wire: int
    value: int  # varint / fixed value; payload length for LEN
    offset: int  # payload start for LEN; field start otherwise

    @property
    def end(self) -> int:
        return self.offset + self.value


class Blob:
    """Random access to a stream through one read-ahead window; counts fields visited."""

    def __init__(self, fh: BinaryIO, size: int, max_fields: int) -> None:
        self.fh = fh
        self.size = size
        self.max_fields = max_fields
        self.fields_seen = 0
        self._base = 0
        self._buf = b""

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > self.size:
            raise WireError(f"read of {n} bytes at {offset} runs past the end", offset)
        rel = offset - self._base
        if rel >= 0 and rel + n <= len(self._buf):
            return self._buf[rel:rel + n]
        self.fh.seek(offset)
        self._buf = self.fh.read(max(n, WINDOW))
        self._base = offset
        if len(self._buf) < n:
            raise WireError("stream shorter than its declared size", offset)
        return self._buf[:n]

    def string(self, f: Field, limit: int = MAX_STRING) -> str:
        data = self.read(f.offset, min(f.value, limit))
        return data.decode("utf-8", errors="replace")

    def raw(self, f: Field, limit: int = MAX_STRING) -> bytes:
        return self.read(f.offset, min(f.value, limit))

    def varint(self, offset: int, end: int) -> tuple[int, int]:
        chunk = self.read(offset, min(10, end - offset))
        result = shift = 0
        for i, b in enumerate(chunk):
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result, offset + i + 1
            shift += 7
        raise WireError("varint runs past its message or is longer than 10 bytes", offset)

    def fields(self, start: int, end: int) -> Iterator[Field]:
        """Fields of the message in [start, end)."""
        if end > self.size:
            raise WireError(f"message claims {end - start} bytes past the end of the file",
                            start)
        pos = start
        while pos < end:
            self.fields_seen += 1
            if self.fields_seen > self.max_fields:
                raise WireBudget()
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise WireError("field number 0", pos)
            if wire == VARINT:
                value, pos = self.varint(pos, end)
                yield Field(number, wire, value, pos)
            elif wire == LEN:
                length, pos = self.varint(pos, end)
                if pos + length > end:
                    raise WireError(f"field {number} declares {length} bytes beyond its "
                                    "enclosing message", pos, number)
                yield Field(number, wire, length, pos)
                pos += length
            elif wire == I64:
                if pos + 8 > end:
                    raise WireError("truncated 64-bit field", pos)
                yield Field(number, wire, int.from_bytes(self.read(pos, 8), "little"), pos)
                pos += 8
            elif wire == I32:
                if pos + 4 > end:
                    raise WireError("truncated 32-bit field", pos)
                yield Field(number, wire, int.from_bytes(self.read(pos, 4), "little"), pos)
                pos += 4
            else:
                raise WireError(f"unsupported wire type {wire} (groups are not used by "
                                "these formats)", pos)

    def packed_varints(self, f: Field, limit: int) -> list[int]:
        """Decode a packed repeated varint field (at most ``limit`` values)."""
        out: list[int] = []
        pos, end = f.offset, f.end
        while pos < end and len(out) < limit:
            v, pos = self.varint(pos, end)
            out.append(v)
        return out


def signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v
