"""Bounded access to the bytes of a file or of an archive member.

Readers never touch paths directly: they get a Source, so the same reader serves a file
on disk and a member decompressed from an archive.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

# Members larger than this are spooled to a temporary file instead of memory.
SPOOL_THRESHOLD = 32 * 1024 * 1024


class TooLarge(Exception):
    """A read asked for more bytes than the configured bound."""


class RemoteBytes(Protocol):
    """Bytes that live elsewhere (``scan/sources``): each open is a seekable stream."""

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class Source:
    """One byte stream to scan.

    ``display_path`` is what reports show (``ARCHIVE!member`` for members); ``name`` is
    the base name, used only as a hint in messages, never to pick a reader.
    """

    display_path: str
    size: int
    fs_path: Path | None = None
    data: bytes | None = None
    spool: Path | None = None  # temporary file owned by the engine
    remote: RemoteBytes | None = None  # range reads of a remote file (scan/sources)

    @property
    def name(self) -> str:
        tail = self.display_path.rsplit("!", 1)[-1]
        return tail.replace("\\", "/").rsplit("/", 1)[-1]

    def open(self) -> BinaryIO:
        """A seekable binary stream positioned at 0. The caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.remote is not None:
            return self.remote.open()
        path = self.fs_path or self.spool
        if path is None:
            raise ValueError("source has no bytes")
        return open(path, "rb")

    def head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with self.open() as fh:
            return fh.read(n)

    def read_all(self, limit: int) -> bytes:
        """The whole content, refusing anything larger than ``limit`` bytes."""
        if self.size > limit:
            raise TooLarge(f"{self.size} bytes exceeds the {limit}-byte read limit")
        if self.data is not None:
            return self.data
        with self.open() as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise TooLarge(f"content grew past the {limit}-byte read limit while reading")
        return data

    @staticmethod
    def from_file(path: Path, display_path: str) -> Source:
        return Source(display_path=display_path, size=path.stat().st_size, fs_path=path)

    @staticmethod
    def from_bytes(data: bytes, display_path: str) -> Source:
        return Source(display_path=display_path, size=len(data), data=data)


def spool_stream(stream: BinaryIO, display_path: str, limit: int) -> Source:
    """Copy a decompressing stream into a Source, at most ``limit`` bytes.

    Small members stay in memory; big ones go to a temporary file so memory stays bounded.
    Raises TooLarge when the stream yields more than ``limit`` bytes.
    """
    buf = bytearray()
    chunk = 1 << 20
    while len(buf) < SPOOL_THRESHOLD:
        block = stream.read(min(chunk, limit + 1 - len(buf)))
        if not block:
            return Source.from_bytes(bytes(buf), display_path)
        buf += block
        if len(buf) > limit:
            raise TooLarge(f"member expands past the {limit}-byte limit")
    import tempfile  # only large members are spooled; keep it off the start-up path

    fd, name = tempfile.mkstemp(prefix="mlwarden-")
    total = len(buf)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(buf)
            while True:
                block = stream.read(chunk)
                if not block:
                    break
                total += len(block)
                if total > limit:
                    raise TooLarge(f"member expands past the {limit}-byte limit")
                out.write(block)
    except BaseException:
        os.unlink(name)
        raise
    return Source(display_path=display_path, size=total, spool=Path(name))


def release(source: Source) -> None:
    """Delete a spooled temporary file, if any."""
    if source.spool is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(source.spool)
