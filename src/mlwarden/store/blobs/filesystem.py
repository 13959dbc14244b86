"""Blobs as local files: ``DIR/sha256/ab/cdef...``, read-only (0444), written atomically.

A write goes to ``DIR/.uploads/`` (same filesystem), is hashed while it is written,
fsynced, checked, then renamed into place and the directory fsynced: a blob file is
complete or absent. Moving a file the store owns costs a rename; a file with other hard
links is copied instead, because a link outside the store could still change it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mlwarden.store.blobs.base import (
    CHUNK,
    BlobError,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    Digest,
    OnVerified,
    Readable,
    Tap,
    UploadInfo,
    check_sha256,
    verify_digest,
)
from mlwarden.util.fs import fsync_dir

_HEX = frozenset("0123456789abcdef")


def copy_hashing(reader: Readable, out: BinaryIO | None, tap: Tap | None) -> Digest:
    h = hashlib.sha256()
    n = 0
    while True:
        block = reader.read(CHUNK)
        if not block:
            break
        h.update(block)
        n += len(block)
        if tap is not None:
            tap(block)
        if out is not None:
            out.write(block)
    return Digest(h.hexdigest(), n)


class _FileRange:
    """A blob file opened at ``start``, reading at most ``length`` bytes."""

    def __init__(self, path: Path, start: int, length: int | None) -> None:
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        except FileNotFoundError:
            raise BlobNotFound(f"blob {path.parent.name}{path.name} is not in the store") \
                from None
        except OSError as exc:
            raise BlobError(f"cannot read blob {path}: {exc.strerror or exc}") from exc
        self._fh.seek(start)
        self._left = length

    def read(self, n: int = -1, /) -> bytes:
        if self._left is not None:
            n = self._left if n < 0 else min(n, self._left)
            if n == 0:
                return b""
        data = self._fh.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self._fh.fileno()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> _FileRange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FilesystemBlobs:
    kind = "filesystem"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.blob_root = self.directory / "sha256"
        self.uploads = self.directory / ".uploads"
        self.url = self.directory.absolute().as_uri()

    def ensure(self) -> None:
        try:
            self.blob_root.mkdir(parents=True, exist_ok=True)
            self.uploads.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BlobError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.blob_root / sha256[:2] / sha256[2:]

    # ------------------------------------------------------------------ writing

    def put_stream(self, reader: Readable, *, expected_sha256: str | None = None,
                   expected_size: int | None = None, tap: Tap | None = None,
                   on_verified: OnVerified | None = None) -> Digest:
        self.ensure()
        fd, tmp = tempfile.mkstemp(prefix="in-", dir=self.uploads)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = copy_hashing(reader, out, tap)
                out.flush()
                os.fsync(out.fileno())
            verify_digest(digest, expected_sha256, expected_size)
            if on_verified is not None:
                on_verified(digest)
            self._place(Path(tmp), digest.sha256)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise  # an OSError may be the reader's or ours: the caller words it
        return digest

    def put_file(self, path: Path, *, move: bool = False, known: Digest | None = None,
                 on_verified: OnVerified | None = None) -> Digest:
        try:
            if move and os.stat(path).st_nlink == 1:
                return self._move_in(path, known, on_verified)
            digest = self._copy_in(path, known, on_verified)
            if move:
                os.unlink(path)
            return digest
        except OSError as exc:
            raise BlobError(f"{path}: {exc.strerror or exc}") from exc

    def _copy_in(self, path: Path, known: Digest | None,
                 on_verified: OnVerified | None) -> Digest:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            try:
                return self.put_stream(fh, expected_size=size, on_verified=on_verified,
                                       expected_sha256=known.sha256 if known else None)
            except BlobMismatch as exc:
                raise BlobMismatch(f"{path}: file changed while it was read ({exc})") from None

    def _move_in(self, path: Path, known: Digest | None,
                 on_verified: OnVerified | None) -> Digest:
        self.ensure()
        private = self.uploads / f"mv-{uuid.uuid4().hex}"
        try:
            os.rename(path, private)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another filesystem: copy, then consume
                raise
            digest = self._copy_in(path, known, on_verified)
            os.unlink(path)
            return digest
        try:
            # Renamed into a directory only the store writes: the bytes can no longer
            # change, so a digest the store took while writing them still holds.
            if known is None:
                with open(private, "rb") as fh:
                    known = copy_hashing(fh, None, None)
            elif os.stat(private).st_size != known.size:
                raise BlobMismatch(f"{path}: {os.stat(private).st_size} bytes, "
                                   f"expected {known.size}")
            if on_verified is not None:
                on_verified(known)
            self._place(private, known.sha256)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(private)
            raise
        return known

    def _place(self, tmp: Path, sha256: str) -> None:
        final = self.path(sha256)
        os.chmod(tmp, 0o444)
        if final.exists():  # same bytes already stored: deduplicate
            os.unlink(tmp)
            with contextlib.suppress(OSError):
                os.utime(final)  # written again now: gc's grace period starts over
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)

    # ------------------------------------------------------------------ reading

    def open_range(self, sha256: str, start: int = 0,
                   length: int | None = None) -> _FileRange:
        return _FileRange(self.path(sha256), start, length)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return os.stat(self.path(sha256)).st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} is not in the store") from None

    def local_path(self, sha256: str) -> Path:
        return self.path(sha256)

    def presign(self, sha256: str, ttl: int, *, filename: str | None = None) -> str | None:
        return None

    def fetch_to(self, sha256: str, dest: Path) -> None:
        src = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest)
            return
        except FileNotFoundError:
            raise BlobNotFound(f"blob {sha256} is not in the store") from None
        except OSError:
            pass  # another filesystem, or links refused: copy and check
        with self.open_range(sha256) as r, open(dest, "wb") as out:
            got = copy_hashing(r, out, None)
        verify_digest(got, sha256, None)

    # ------------------------------------------------------------------ maintenance

    def iter_all(self) -> Iterator[BlobInfo]:
        try:
            subs = sorted(os.scandir(self.blob_root), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for sub in subs:
            if len(sub.name) != 2 or not _HEX.issuperset(sub.name) or not sub.is_dir():
                continue
            for f in os.scandir(sub.path):
                if len(f.name) != 62 or not _HEX.issuperset(f.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = f.stat()
                    yield BlobInfo(sub.name + f.name, st.st_size, st.st_mtime)

    def iter_uploads(self) -> Iterator[UploadInfo]:
        try:
            entries = list(os.scandir(self.uploads))
        except FileNotFoundError:
            return
        for e in entries:
            with contextlib.suppress(FileNotFoundError):
                st = e.stat(follow_symlinks=False)
                yield UploadInfo(e.name, st.st_size, st.st_mtime)

    def discard_upload(self, name: str) -> None:
        if "/" in name or name in ("", ".", ".."):
            raise BlobError(f"not an upload name: {name!r}")
        p = self.uploads / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    def delete(self, sha256: str) -> bool:
        try:
            os.unlink(self.path(sha256))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BlobError(f"cannot delete blob {sha256}: {exc.strerror or exc}") from exc
        return True

    def check(self) -> None:
        if not os.access(self.blob_root, os.R_OK | os.X_OK):
            raise BlobError(f"{self.blob_root}: blob directory is missing or unreadable")

    def close(self) -> None:
        pass
