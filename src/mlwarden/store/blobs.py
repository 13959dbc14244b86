"""Content-addressed blob files: ``blobs/sha256/ab/cdef...``, written atomically.

A blob is named by the sha256 of the bytes actually written, so a file that changed on
the way in can never be filed under another file's name. Nothing outside ``blobs/`` is
ever served: the registry asks this class for a path by hash only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlwarden.store.errors import InvalidName
from mlwarden.store.hashing import FileDigest, copy_and_hash
from mlwarden.store.names import SHA256_RE
from mlwarden.util.fs import fsync_dir


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_root = root / "blobs" / "sha256"
        self.tmp = root / "tmp"

    def ensure(self) -> None:
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if not SHA256_RE.fullmatch(sha256):
            raise InvalidName(f"not a sha256 digest: {sha256!r}")
        return self.blob_root / sha256[:2] / sha256[2:]

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    # ------------------------------------------------------------------ writing

    def ingest_copy(self, src: Path, rel_path: str) -> FileDigest:
        """Copy ``src`` in, hashing in the same pass; the blob is what was read."""
        fd, tmp = tempfile.mkstemp(prefix=".in-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                digest = copy_and_hash(fh, out, rel_path)
                out.flush()
                os.fsync(out.fileno())
            self._place(Path(tmp), digest.sha256)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return digest

    def ingest_move(self, src: Path, rel_path: str,
                    known: FileDigest | None = None) -> FileDigest:
        """Move a file the caller owns (a staged or quarantined file) into the store.

        The file is renamed into the store's private tmp directory first, so the hash
        describes bytes no one else can still reach by name. A file with other hard links
        is copied instead, because a link outside the store could still change it.
        """
        if os.stat(src).st_nlink > 1:
            return self.ingest_copy(src, rel_path)
        private = self.tmp / f".mv-{uuid.uuid4().hex}"
        try:
            os.rename(src, private)
        except OSError as exc:
            if exc.errno == errno.EXDEV:  # other filesystem: copy instead
                return self.ingest_copy(src, rel_path)
            raise
        try:
            if known is None:
                with open(private, "rb") as fh:
                    known = copy_and_hash(fh, None, rel_path)
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
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)

    @contextlib.contextmanager
    def staging(self, prefix: str = "stage-") -> Iterator[Path]:
        """A private directory inside the store (same filesystem: promotion is a rename).

        It is removed when the block ends, whether or not its files were promoted.
        """
        self.ensure()
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def iter_blobs(self) -> Iterator[str]:
        if not self.blob_root.is_dir():
            return
        for sub in sorted(self.blob_root.iterdir()):
            for f in sorted(sub.iterdir()):
                yield sub.name + f.name
