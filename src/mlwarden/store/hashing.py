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
