"""The blob backend interface: content-addressed bytes, wherever they are kept.

Every blob is named by the sha256 of its bytes. A write is hashed while it streams and
the blob becomes visible under its name only after the hash (and, when the caller knows
them, the expected digest and size) has been checked, so no reader ever sees a partial
or mislabelled blob. Callers never build a path or key themselves: they ask the backend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from mlwarden.store.errors import InvalidName, StoreError
from mlwarden.store.names import SHA256_RE

CHUNK = 1 << 20

Tap = Callable[[bytes], None]
"""Sees every chunk of a write in order (for a second hash or a size check)."""

OnVerified = Callable[["Digest"], None]
"""Called once the bytes are hashed and checked, before the blob becomes visible; raising
aborts the write. The store uses it to lease the blob so gc cannot race the write."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class BlobError(StoreError):
    """A backend operation failed (I/O, network, permissions)."""


class BlobNotFound(BlobError):
    pass


class BlobMismatch(BlobError):
    """The bytes written do not hash to (or are not as long as) what the caller expected."""


@dataclass(frozen=True)
class Digest:
    sha256: str
    size: int


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    modified: float  # epoch seconds of the last write (gc's grace period reads it)


@dataclass(frozen=True)
class UploadInfo:
    """A temporary upload that never became a blob (in flight, or left by a crash)."""

    name: str
    size: int
    modified: float


class BlobReader(Protocol):
    """What ``open_range`` returns: read() until b"" (bounded by the range), then close()."""

    def read(self, n: int = -1, /) -> bytes: ...
    def close(self) -> None: ...
    def __enter__(self) -> BlobReader: ...
    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class BlobBackend(Protocol):
    kind: str  # "filesystem" | "s3"
    url: str  # where the blobs live, without credentials; open_blobs(url) reopens it

    def put_stream(self, reader: Readable, *, expected_sha256: str | None = None,
                   expected_size: int | None = None, tap: Tap | None = None,
                   on_verified: OnVerified | None = None) -> Digest:
        """Store everything ``reader`` yields; hashed while it streams (multipart on S3).

        Visible under its sha256 only once verified; a mismatch raises BlobMismatch and
        leaves nothing behind. Storing bytes that are already present is a no-op.
        """
        ...

    def put_file(self, path: Path, *, move: bool = False, known: Digest | None = None,
                 on_verified: OnVerified | None = None) -> Digest:
        """Store a local file. ``move=True`` is for a file the store owns (staging,
        quarantine): it is consumed, by a rename where possible. ``known`` is the digest
        the store computed when it wrote that file; a moved file with ``known`` is not
        re-read, every other file is hashed on the way in."""
        ...

    def open_range(self, sha256: str, start: int = 0,
                   length: int | None = None) -> BlobReader:
        """Read ``length`` bytes (to the end when None) from ``start``. BlobNotFound."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """Stored size in bytes. BlobNotFound."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove a blob; False if it was not there. Only gc calls this."""
        ...

    def iter_all(self) -> Iterator[BlobInfo]:
        """Every stored blob (any order)."""
        ...

    def iter_uploads(self) -> Iterator[UploadInfo]:
        """Temporary uploads (in flight or abandoned); gc removes the old ones."""
        ...

    def discard_upload(self, name: str) -> None: ...

    def presign(self, sha256: str, ttl: int, *, filename: str | None = None) -> str | None:
        """A short-lived URL a client can GET (Range supported) without other credentials,
        or None when the backend has no such thing (the filesystem)."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """The file holding the blob, for backends that keep local files (sendfile,
        X-Accel-Redirect, symlinked views); None otherwise. The file may not exist."""
        ...

    def fetch_to(self, sha256: str, dest: Path) -> None:
        """A private local copy at ``dest`` (a hard link where possible), verified."""
        ...

    def check(self) -> None:
        """Raise BlobError when the backend cannot be reached (readiness)."""
        ...

    def close(self) -> None: ...


def check_sha256(sha256: str) -> str:
    if not SHA256_RE.fullmatch(sha256):
        raise InvalidName(f"not a sha256 digest: {sha256!r}")
    return sha256


def verify_digest(got: Digest, expected_sha256: str | None, expected_size: int | None) -> None:
    if expected_size is not None and got.size != expected_size:
        raise BlobMismatch(f"got {got.size} bytes, expected {expected_size} "
                           f"(sha256 {got.sha256})")
    if expected_sha256 is not None and got.sha256 != expected_sha256:
        raise BlobMismatch(f"content hashes to {got.sha256}, expected {expected_sha256}")


def hash_blob(backend: BlobBackend, sha256: str) -> Digest:
    """Re-read a stored blob and hash it (verify). BlobNotFound when it is gone."""
    h = hashlib.sha256()
    n = 0
    with backend.open_range(sha256) as r:
        while True:
            block = r.read(4 * CHUNK)
            if not block:
                break
            h.update(block)
            n += len(block)
    return Digest(h.hexdigest(), n)


def same_location(a: str, b: str) -> bool:
    """Whether two blob URLs name the same place (query options such as an endpoint
    may differ between hosts)."""
    return a.split("?", 1)[0].rstrip("/") == b.split("?", 1)[0].rstrip("/")
