"""One-pass hashing while bytes are copied into the store.

Each file gets its sha256 (the blob key, and the LFS oid) and, for small text-like files,
the git blob sha1 the Hub uses as their ETag. Which files count as LFS follows the Hub's
default ``.gitattributes``: binary content, known weight extensions, or more than 10 MiB.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 20
LFS_MIN_SIZE = 10 << 20
# The Hub's default .gitattributes tracks these with LFS whatever their size.
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib",
    ".lfs", ".mlmodel", ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet",
    ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar", ".safetensors", ".tar", ".tflite",
    ".tgz", ".wasm", ".xz", ".zip", ".zst",
)


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int
    lfs: bool
    git_oid: str  # git blob sha1 of the content, or of the LFS pointer for LFS files

    @property
    def etag(self) -> str:
        """What the Hub sends as (X-Linked-)ETag: sha256 for LFS, git sha1 otherwise."""
        return self.sha256 if self.lfs else self.git_oid


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
            f"size {size}\n").encode("ascii")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def is_lfs(path: str, size: int, head: bytes) -> bool:
    return size > LFS_MIN_SIZE or path.lower().endswith(LFS_SUFFIXES) or b"\x00" in head[:8000]


class FileChanged(OSError):
    """The source grew or shrank while it was copied: the copy cannot be trusted."""


def copy_and_hash(src: BinaryIO, dst: BinaryIO | None, path: str) -> FileDigest:
    """Stream ``src`` into ``dst`` (if given), hashing what was actually read."""
    size = os.fstat(src.fileno()).st_size
    head = src.read(8192)
    lfs = is_lfs(path, size, head)
    sha256 = hashlib.sha256()
    sha1 = None if lfs else hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False)
    total = 0
    block = head
    while block:
        total += len(block)
        if total > size:
            break
        sha256.update(block)
        if sha1 is not None:
            sha1.update(block)
        if dst is not None:
            dst.write(block)
        block = src.read(CHUNK)
    if total != size:
        raise FileChanged(f"{path}: file changed size while it was read")
    digest = sha256.hexdigest()
    oid = sha1.hexdigest() if sha1 is not None else git_blob_sha1(lfs_pointer(digest, size))
    return FileDigest(digest, size, lfs, oid)


class GitTap:
    """Sees a blob's bytes as the backend writes them and completes its FileDigest.

    With the size known up front the git blob sha1 is computed in the same pass; without it
    (a streamed upload), up to 10 MiB are kept to compute it at the end, because anything
    larger is an LFS file whose oid needs only the sha256.
    """

    def __init__(self, path: str, size: int | None = None) -> None:
        self.path = path
        self.size = size
        self.head = bytearray()
        self.sha1 = (hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False)
                     if size is not None and size <= LFS_MIN_SIZE else None)
        self.buf: bytearray | None = bytearray() if size is None else None
        self.total = 0

    def __call__(self, block: bytes) -> None:
        if len(self.head) < 8192:
            self.head += block[:8192 - len(self.head)]
        self.total += len(block)
        if self.sha1 is not None:
            self.sha1.update(block)
        if self.buf is not None:
            if len(self.buf) + len(block) <= LFS_MIN_SIZE:
                self.buf += block
            else:
                self.buf = None  # larger than 10 MiB: LFS by size

    def digest(self, sha256: str, size: int) -> FileDigest:
        lfs = is_lfs(self.path, size, bytes(self.head))
        if lfs:
            oid = git_blob_sha1(lfs_pointer(sha256, size))
        elif self.sha1 is not None and size == self.size:
            oid = self.sha1.hexdigest()
        elif self.buf is not None and len(self.buf) == size:
            oid = git_blob_sha1(bytes(self.buf))
        else:  # cannot happen for a consistent stream; refuse rather than guess
            raise FileChanged(f"{self.path}: size changed while it was stored")
        return FileDigest(sha256, size, lfs, oid)
