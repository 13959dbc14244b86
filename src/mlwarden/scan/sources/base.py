"""What a remote input resolves to: a tree of files with their metadata, each readable as a
:class:`~mlwarden.scan.source.Source` through range reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlwarden.scan.source import Source
from mlwarden.scan.sources.ranges import BLOCK, FetchStats, ReadLog, RemoteBlob


class RemoteInputError(Exception):
    """A remote input that cannot be scanned at all (unknown repo, bad URL, no access)."""


@dataclass(frozen=True)
class RemoteFile:
    path: str  # inside the tree, '/'-separated
    size: int
    sha256: str | None = None  # published by the endpoint's metadata, never computed here
    sha256_source: str | None = None  # e.g. "lfs-metadata"
    git_oid: str | None = None


# Opens a file of the tree as an fsspec file whose cache is a RangeCache.
FileOpener = Callable[[RemoteFile, dict[str, Any]], Any]


@dataclass
class RemoteTree:
    """One remote repository or prefix. ``display_root`` heads every reported path:
    ``hf://ORG/NAME@COMMIT``, ``s3://bucket/prefix``."""

    kind: str  # hf | s3 | gs
    given: str  # the argument as typed
    display_root: str
    endpoint: str  # politeness key: scheme://host
    files: tuple[RemoteFile, ...]
    opener: FileOpener
    repo_id: str | None = None
    revision: str | None = None  # as requested
    commit: str | None = None  # resolved 40-hex commit (hf)
    whole_repository: bool = True  # False when the URL named a path inside the repo
    stats: FetchStats = field(default_factory=FetchStats)
    blocksize: int = BLOCK
    _blobs: dict[str, RemoteBlob] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def display(self, f: RemoteFile) -> str:
        return f"{self.display_root}/{f.path}"

    def blob(self, f: RemoteFile) -> RemoteBlob:
        with self._lock:
            b = self._blobs.get(f.path)
        if b is None:
            fh = self.opener(f, {"stats": self.stats})
            b = RemoteBlob.from_file(fh, f.size)
            with self._lock:
                b = self._blobs.setdefault(f.path, b)
        return b

    def source(self, f: RemoteFile) -> Source:
        return Source(display_path=self.display(f), size=f.size, remote=self.blob(f))

    def read(self, rel: str, limit: int) -> bytes | None:
        """The first bytes of a file, at most ``limit`` (repository checks); None when it
        is not in the tree, is larger than ``limit`` or cannot be read."""
        f = self.by_path().get(rel)
        if f is None:
            return None
        if f.size > limit:
            return None
        try:
            with self.blob(f).open() as fh:
                return fh.read(limit)
        except OSError:
            return None

    def head(self, rel: str, n: int) -> bytes:
        f = self.by_path().get(rel)
        if f is None:
            return b""
        try:
            with self.blob(f).open() as fh:
                return fh.read(n)
        except OSError:
            return b""

    def by_path(self) -> dict[str, RemoteFile]:
        return {f.path: f for f in self.files}

    def read_logs(self) -> dict[str, ReadLog]:
        """Relative path -> the ranges read so far, for every file opened."""
        with self._lock:
            return {p: b.log for p, b in self._blobs.items()}

    def release(self) -> None:
        with self._lock:
            self._blobs.clear()
