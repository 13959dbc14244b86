"""Range reads of a remote file through one shared block cache.

The engine opens a Source several times (sniffing, the reader, the polyglot probe) and
readers seek around (a zip's end records, then its first member). Every open of one
remote file shares one :class:`RangeCache`, so each byte range crosses the network once,
and missing blocks that are adjacent go out as one request. Blocks are small (64 KiB):
the scanner reads headers and directories, a few KiB each. Big sequential reads (a
pickle read whole) are passed through without being kept.

Every fetched range is recorded with the sha256 of its bytes (:class:`ReadLog`), so that
a caller that later downloads the whole file can prove that the scan saw exactly the
verified bytes (``ReadLog.matches``).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fsspec.caching import BaseCache, caches, register_cache

Fetcher = Callable[[int, int], bytes]

BLOCK = 64 << 10  # one request fetches at least this much
KEEP_BLOCKS = 512  # per file: 32 MiB of cached blocks at most
PASS_THROUGH = 8 << 20  # reads of missing runs longer than this are not cached
MAX_LOGGED = 4096  # ranges recorded per file for ReadLog.matches


class RemoteReadError(OSError):
    """A range read failed or returned the wrong number of bytes."""


@dataclass
class FetchStats:
    """Bytes and requests one remote tree cost; thread-safe counters."""

    requests: int = 0
    bytes_read: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, nbytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes_read += nbytes


@dataclass
class ReadLog:
    """(start, length, sha256) of every range fetched from one file."""

    ranges: list[tuple[int, int, str]] = field(default_factory=list)
    overflow: bool = False  # more ranges than MAX_LOGGED: cannot prove anything

    def add(self, start: int, data: bytes) -> None:
        if len(self.ranges) >= MAX_LOGGED:
            self.overflow = True
            return
        self.ranges.append((start, len(data), hashlib.sha256(data).hexdigest()))

    def matches(self, path: Path) -> bool:
        """True when every recorded range has the same bytes in the local file ``path``."""
        if self.overflow:
            return False
        try:
            with open(path, "rb") as fh:
                for start, length, digest in self.ranges:
                    fh.seek(start)
                    if hashlib.sha256(fh.read(length)).hexdigest() != digest:
                        return False
        except OSError:
            return False
        return True


class RangeCache(BaseCache):  # type: ignore[misc]
    """An fsspec cache (``cache_type="mlwarden-ranges"``) of sparse, LRU-bounded blocks;
    missing adjacent blocks are fetched in one request. Thread-safe."""

    name = "mlwarden-ranges"

    def __init__(self, blocksize: int, fetcher: Fetcher, size: int,
                 stats: FetchStats | None = None, log: ReadLog | None = None) -> None:
        super().__init__(blocksize or BLOCK, fetcher, size)
        self.stats = stats
        self.log = log
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _fetch(self, start: int | None, stop: int | None) -> bytes:
        start = 0 if start is None else max(0, start)
        stop = self.size if stop is None else min(stop, self.size)
        if start >= stop:
            return b""
        bs = self.blocksize
        first, last = start // bs, (stop - 1) // bs
        with self._lock:
            missing = [b for b in range(first, last + 1) if b not in self._blocks]
        if missing and (len(missing) * bs > PASS_THROUGH):
            # A long read (a whole pickle): fetch exactly what is asked, keep nothing.
            self.miss_count += 1
            return self._get(start, stop)
        got: dict[int, bytes] = {}
        for run_start, run_end in _runs(missing):
            lo, hi = run_start * bs, min(self.size, (run_end + 1) * bs)
            data = self._get(lo, hi)
            for b in range(run_start, run_end + 1):
                got[b] = data[(b - run_start) * bs:(b - run_start + 1) * bs]
        if missing:
            self.miss_count += 1
        else:
            self.hit_count += 1
        with self._lock:
            parts = []
            for b in range(first, last + 1):
                block = got.get(b)
                if block is None:
                    block = self._blocks[b]
                    self._blocks.move_to_end(b)
                parts.append(block)
            for b, block in got.items():
                self._blocks[b] = block
            while len(self._blocks) > KEEP_BLOCKS:
                self._blocks.popitem(last=False)
        out = b"".join(parts)
        off = start - first * bs
        return out[off:off + (stop - start)]

    def whole(self) -> bytes | None:
        """The whole file when every block of it is cached (small files read by the scan),
        else None. Costs no request."""
        n = -(-self.size // self.blocksize) if self.size else 0
        with self._lock:
            if any(b not in self._blocks for b in range(n)):
                return None
            return b"".join(self._blocks[b] for b in range(n))

    def _get(self, lo: int, hi: int, record: bool = True) -> bytes:
        data: bytes = self.fetcher(lo, hi)
        if len(data) != hi - lo:
            raise RemoteReadError(f"range {lo}-{hi - 1} returned {len(data)} bytes, "
                                  f"expected {hi - lo}")
        self.total_requested_bytes += len(data)
        if self.stats is not None:
            self.stats.add(len(data))
        if record and self.log is not None:
            self.log.add(lo, data)
        return data


if RangeCache.name not in caches:
    register_cache(RangeCache)


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for b in blocks:
        if runs and runs[-1][1] == b - 1:
            runs[-1] = (runs[-1][0], b)
        else:
            runs.append((b, b))
    return runs


class RemoteBlob:
    """The bytes of one remote file, for ``Source(remote=...)``: every ``open()`` is an
    independent seekable stream over the shared cache."""

    def __init__(self, cache: RangeCache) -> None:
        self.size = cache.size
        self.cache = cache
        if cache.log is None:
            cache.log = ReadLog()
        self.log: ReadLog = cache.log

    @staticmethod
    def from_fetcher(fetcher: Fetcher, size: int, stats: FetchStats | None = None,
                     blocksize: int = BLOCK) -> RemoteBlob:
        return RemoteBlob(RangeCache(blocksize, fetcher, size, stats, ReadLog()))

    @staticmethod
    def from_file(fh: object, size: int) -> RemoteBlob:
        """From an fsspec file opened with ``cache_type="mlwarden-ranges"``."""
        cache = getattr(fh, "cache", None)
        if not isinstance(cache, RangeCache):
            raise TypeError("remote file was not opened with the mlwarden-ranges cache")
        if cache.size != size:
            raise RemoteReadError(f"file size {cache.size} differs from the listing's {size}")
        return RemoteBlob(cache)

    def open(self) -> BinaryIO:
        return _RangeStream(self.cache, self.size)  # type: ignore[return-value]

    def stream(self, chunk: int = 8 << 20) -> io.RawIOBase:
        """Sequential reads of the whole file that bypass the cache (hashing)."""
        return _Sequential(self.cache, self.size, chunk)


class _RangeStream(io.RawIOBase):
    def __init__(self, cache: RangeCache, size: int) -> None:
        self._cache = cache
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def read(self, n: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of closed file")
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if self._pos >= end:
            return b""
        data = self._cache._fetch(self._pos, end)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        memoryview(b)[:len(data)] = data
        return len(data)


class _Sequential(io.RawIOBase):
    def __init__(self, cache: RangeCache, size: int, chunk: int) -> None:
        self._cache = cache
        self._size = size
        self._chunk = chunk
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if self._pos >= self._size:
            return b""
        want = self._chunk if n is None or n < 0 else min(n, self._chunk)
        end = min(self._size, self._pos + want)
        data = self._cache._get(self._pos, end, record=False)
        self._pos = end
        return data
