"""Bounded, non-following reads of instruction files: what is at a path right now.

A FIFO or device planted under an instruction name must not hang or flood us, so files are
opened non-blocking and checked with fstat before any byte is read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
CHUNK = 1 * MiB


@dataclass(frozen=True)
class FileState:
    """One path's current state. ``type``: file, symlink, special, missing or error."""

    type: str
    sha256: str | None = None
    size: int | None = None
    target: str | None = None  # symlink target as written in the link
    content: bytes | None = None  # whole content when size <= keep
    error: str | None = None

    def same_as(self, other: FileState) -> bool:
        return (self.type, self.sha256, self.size, self.target) == (
            other.type, other.sha256, other.size, other.target)


def open_regular(path: str | os.PathLike[str]) -> int:
    """Open for reading without blocking on FIFOs; refuse anything but a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole file, or ValueError when it is larger than ``limit``."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data


def read_state(path: Path, keep: int = 4 * MiB) -> FileState:
    """Hash the file at ``path`` (following a symlink, but recording it as one)."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return FileState("missing")
    except OSError as exc:
        return FileState("error", error=exc.strerror or str(exc))
    target = None
    kind = "file"
    if stat.S_ISLNK(lst.st_mode):
        kind = "symlink"
        try:
            target = os.readlink(path)
        except OSError as exc:
            return FileState("error", error=exc.strerror or str(exc))
        try:
            st = os.stat(path)
        except OSError:
            return FileState("symlink", target=target, error="dangling symlink")
        if not stat.S_ISREG(st.st_mode):
            return FileState("symlink", target=target, error="points to a non-regular file")
    elif not stat.S_ISREG(lst.st_mode):
        what = "directory" if stat.S_ISDIR(lst.st_mode) else "FIFO, device or socket"
        return FileState("special", error=f"not a regular file ({what})")
    try:
        fd = open_regular(path)
    except OSError as exc:
        return FileState(kind, target=target, error=exc.strerror or str(exc))
    digest = hashlib.sha256()
    size = 0
    kept: list[bytes] | None = []
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if kept is not None:
                kept.append(chunk)
                if size > keep:
                    kept = None
    return FileState(kind, digest.hexdigest(), size, target,
                     b"".join(kept) if kept is not None else None)
