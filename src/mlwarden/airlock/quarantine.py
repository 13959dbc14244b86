"""Quarantine directories: private, inside the store's tmp area (same filesystem, so
promotion is a rename), never served, and always cleaned up.

Each quarantine holds an advisory lock for as long as its pull runs. A pull that was
killed (no ``finally`` ran) leaves its directory behind unlocked; the next pull removes
every such directory before starting, so a crash never leaves a dirty quarantine for long.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIX = "quarantine-"
LOCK_NAME = ".owner.lock"
UNLOCKED_GRACE = 3600.0  # a directory without a lock file is removed only once this old


def _try_lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def clean_stale(tmp_root: Path) -> list[Path]:
    """Remove quarantines whose owner is gone; returns what was removed."""
    removed: list[Path] = []
    if not tmp_root.is_dir():
        return removed
    for d in tmp_root.glob(PREFIX + "*"):
        if not d.is_dir() or d.is_symlink():
            continue
        lock = d / LOCK_NAME
        if lock.exists():
            fd = _try_lock(lock)
            if fd is None:
                continue  # a live pull owns it
            try:
                shutil.rmtree(d, ignore_errors=True)
            finally:
                os.close(fd)
        else:
            try:
                age = time.time() - d.stat().st_mtime
            except OSError:
                continue
            if age < UNLOCKED_GRACE:
                continue  # being created right now
            shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


@contextlib.contextmanager
def quarantine(tmp_root: Path) -> Iterator[Path]:
    """A fresh quarantine directory; yields the directory downloads go into."""
    tmp_root.mkdir(parents=True, exist_ok=True)
    clean_stale(tmp_root)
    d = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_root))
    fd = os.open(d / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        files = d / "files"
        files.mkdir()
        yield files
    finally:
        shutil.rmtree(d, ignore_errors=True)
        os.close(fd)
