"""Quarantine for pushed bytes: every upload lands here, hashed while it streams, and
leaves only by promotion into the blob store after the commit passed scan and policy.

Layout under the store's private tmp area (same filesystem as the blobs, so promotion is a
rename)::

    quarantine/incoming/<random>     uploads in flight (inline commit content, basic PUTs)
    quarantine/lfs/<sha256>          LFS objects whose bytes matched their oid and size
    quarantine/parts/<upload-id>/    multipart uploads: ``<n>.part`` and ``<n>.etag`` per
                                     part received, joined (and hashed) on completion

Nothing here is ever served: the registry only serves blobs of approved commits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlwarden.store import Store
from mlwarden.store.hashing import FileDigest, git_blob_sha1, is_lfs, lfs_pointer
from mlwarden.util.fs import fsync_dir

HEAD_BYTES = 8192
_OID = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
WRITE_BLOCK = 1 << 20


class UploadError(Exception):
    """The upload is refused; ``status`` is the HTTP answer, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Quarantined:
    """A file in quarantine with the digest of exactly the bytes written."""

    path: Path
    sha256: str
    size: int
    head: bytes

    def digest(self, rel_path: str) -> FileDigest:
        """The store's digest for this content at ``rel_path`` (LFS or not, git oid)."""
        lfs = is_lfs(rel_path, self.size, self.head)
        if lfs:
            oid = git_blob_sha1(lfs_pointer(self.sha256, self.size))
        else:  # not LFS means at most 10 MiB: a second read is cheap
            h = hashlib.sha1(b"blob %d\x00" % self.size, usedforsecurity=False)
            with open(self.path, "rb") as fh:
                for block in iter(lambda: fh.read(WRITE_BLOCK), b""):
                    h.update(block)
            oid = h.hexdigest()
        return FileDigest(self.sha256, self.size, lfs, oid)


class HashingWriter:
    """Bytes in, a quarantined file out; sha256 and size are taken from what was written."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._fh = open(path, "xb")  # noqa: SIM115 - closed in finish()/abort()
        self._sha = hashlib.sha256()
        self._size = 0
        self._head = bytearray()
        self._pending: list[bytes] = []
        self._pending_len = 0

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._size + len(data) > self.limit:
            raise UploadError(413, f"upload larger than the limit of {self.limit} bytes")
        self._size += len(data)
        self._sha.update(data)
        if len(self._head) < HEAD_BYTES:
            self._head += data[:HEAD_BYTES - len(self._head)]
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= WRITE_BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._fh.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_len = 0

    def finish(self) -> Quarantined:
        self._flush()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return Quarantined(self.path, self._sha.hexdigest(), self._size, bytes(self._head))

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class Quarantine:
    def __init__(self, store: Store, max_object_bytes: int) -> None:
        self.root = store.tmp / "quarantine"
        self.incoming = self.root / "incoming"
        self.lfs = self.root / "lfs"
        self.parts = self.root / "parts"
        self.max_object_bytes = max_object_bytes
        for d in (self.incoming, self.lfs, self.parts):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ plain files

    def new_file(self, limit: int | None = None) -> HashingWriter:
        return HashingWriter(self.incoming / uuid.uuid4().hex, limit or self.max_object_bytes)

    # ------------------------------------------------------------------ LFS objects

    def lfs_path(self, oid: str) -> Path:
        if not _OID.fullmatch(oid):
            raise UploadError(422, f"invalid LFS oid {oid!r}: expected 64 lower-case hex digits")
        return self.lfs / oid

    def lfs_object(self, oid: str, size: int) -> Quarantined | None:
        """A verified LFS object, if present with this size."""
        p = self.lfs_path(oid)
        try:
            st = os.stat(p)
        except FileNotFoundError:
            return None
        if st.st_size != size:
            return None
        with open(p, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        return Quarantined(p, oid, size, head)

    def put_lfs(self, oid: str, size: int, read: Callable[[], bytes]) -> None:
        """A basic-transfer PUT: stream, hash, and keep it only if sha256 and size match."""
        final = self.lfs_path(oid)
        w = self.new_file(limit=size)
        try:
            while True:
                chunk = read()
                if not chunk:
                    break
                w.write(chunk)
            q = w.finish()
        except BaseException:
            w.abort()
            raise
        self._adopt(q, oid, size, final)

    def _adopt(self, q: Quarantined, oid: str, size: int, final: Path) -> None:
        if q.size != size or q.sha256 != oid:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(q.path)
            raise UploadError(422, f"uploaded bytes do not match the LFS object: got sha256 "
                              f"{q.sha256} and {q.size} bytes, expected {oid} and {size}")
        os.replace(q.path, final)
        fsync_dir(final.parent)

    # ------------------------------------------------------------------ multipart

    def new_multipart(self) -> str:
        upload_id = uuid.uuid4().hex
        (self.parts / upload_id).mkdir()
        return upload_id

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UploadError(404, "unknown upload")
        d = self.parts / upload_id
        if not d.is_dir():
            raise UploadError(404, "unknown or expired upload")
        return d

    def put_part(self, upload_id: str, number: int, chunk_size: int, size: int,
                 read: Callable[[], bytes]) -> str:
        """Store part ``number`` (1-based); return its ETag (sha256 of the part's bytes).

        Each part is written to its own file and renamed into place only once complete and
        of the right length, so a failed or repeated PUT never damages a part received
        before."""
        d = self._upload_dir(upload_id)
        expected = min(chunk_size, size - (number - 1) * chunk_size)
        if number < 1 or expected <= 0:
            raise UploadError(422, f"part {number} is outside an object of {size} bytes")
        w = HashingWriter(d / f".{number}.{uuid.uuid4().hex}", limit=expected)
        try:
            while chunk := read():
                w.write(chunk)
            q = w.finish()
        except UploadError as exc:
            w.abort()
            if exc.status == 413:
                raise UploadError(413, f"part {number} is larger than {expected} bytes") \
                    from None
            raise
        except BaseException:
            w.abort()
            raise
        if q.size != expected:
            os.unlink(q.path)
            raise UploadError(422, f"part {number} has {q.size} bytes, expected {expected}")
        os.replace(q.path, d / f"{number}.part")
        (d / f"{number}.etag").write_text(q.sha256)
        return q.sha256

    def complete(self, upload_id: str, oid: str, size: int, chunk_size: int,
                 etags: list[tuple[int, str]]) -> None:
        """Check the client's part list against what arrived, then join the parts in one
        pass that hashes the whole object, and keep it only if it is the announced one."""
        d = self._upload_dir(upload_id)
        final = self.lfs_path(oid)
        want = -(-size // chunk_size) if size else 0
        numbers = [n for n, _ in etags]
        if numbers != list(range(1, want + 1)):
            raise UploadError(422, f"completion lists parts {numbers[:5]}..., expected 1..{want}")
        for n, etag in etags:
            try:
                stored = (d / f"{n}.etag").read_text()
            except FileNotFoundError:
                raise UploadError(422, f"part {n} was never uploaded") from None
            if stored != etag.strip('"'):
                raise UploadError(422, f"part {n}: ETag {etag!r} does not match the bytes "
                                  "received")
        w = self.new_file(limit=size)
        try:
            for n in range(1, want + 1):
                with open(d / f"{n}.part", "rb") as fh:
                    for block in iter(lambda: fh.read(WRITE_BLOCK), b""):
                        w.write(block)
            q = w.finish()
        except BaseException:
            w.abort()
            raise
        finally:
            shutil.rmtree(d, ignore_errors=True)
        self._adopt(q, oid, size, final)

    # ------------------------------------------------------------------ housekeeping

    def sweep(self, max_age: float) -> int:
        """Delete quarantined uploads older than ``max_age`` seconds; returns how many."""
        cutoff = time.time() - max_age
        removed = 0
        for d in (self.incoming, self.lfs, self.parts):
            for p in list(d.iterdir()) if d.is_dir() else []:
                try:
                    if p.stat().st_mtime >= cutoff:
                        continue
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink()
                    removed += 1
                except FileNotFoundError:
                    continue
        return removed
