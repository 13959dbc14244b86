"""Download one upstream file into quarantine, verifying it against the Hub metadata.

The HEAD answer must name the resolved commit, the ETag the tree promised (sha256 for LFS,
git blob sha1 otherwise) and the same size; only then is the file fetched, with
huggingface_hub's ``http_get`` (retries, Range resume), into a file name we chose, so no
upstream value ever becomes a path. The bytes are hashed while they are written (one pass);
if the client had to rewind for a resume, the file is hashed again from disk.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlwarden.airlock import rules as R
from mlwarden.airlock.hooks import failing_write
from mlwarden.airlock.upstream import RemoteFile, Upstream, UpstreamError, UpstreamRejected

CHUNK = 1 << 20


class Cancelled(Exception):
    """Another download failed; this one stops early."""


class DiskError(OSError):
    """Writing the quarantine failed (full disk, I/O error)."""


@dataclass(frozen=True)
class Downloaded:
    remote: RemoteFile
    local: Path
    sha256: str
    size: int

    @property
    def git_oid(self) -> str:
        """The git object id the store serves: the upstream tree oid, verified."""
        return self.remote.git_oid


class _HashingWriter:
    """File wrapper for http_get: hashes what is written, notices rewinds."""

    def __init__(self, fh: Any, git_size: int | None, stop: threading.Event) -> None:
        self.fh = fh
        self.sha256 = hashlib.sha256()
        self.sha1 = (hashlib.sha1(b"blob %d\x00" % git_size, usedforsecurity=False)
                     if git_size is not None else None)
        self.written = 0
        self.rewound = False
        self.stop = stop
        self.fail_after = failing_write()
        self._flushed = 0
        self._flusher: threading.Thread | None = None

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise Cancelled()
        if self.fail_after is not None and self.written + len(data) > self.fail_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.fh.write(data)
        self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)
        self.written += len(data)
        if self.written - self._flushed >= _FLUSH_EVERY:
            self._flushed = self.written
            self._start_writeback()
        return len(data)

    def _start_writeback(self) -> None:
        """Push what is written so far to disk in the background, so that the fsync that
        makes the file durable before promotion has little left to do."""
        prev = self._flusher
        if prev is not None and prev.is_alive():
            return
        self.fh.flush()
        fd = self.fh.fileno()
        self._flusher = threading.Thread(target=_quiet_fdatasync, args=(fd,), daemon=True)
        self._flusher.start()

    def join_writeback(self) -> None:
        if self._flusher is not None:
            self._flusher.join()

    def tell(self) -> int:
        return int(self.fh.tell())

    def seek(self, *args: Any) -> int:
        self.rewound = True
        return int(self.fh.seek(*args))

    def truncate(self, *args: Any) -> int:
        self.rewound = True
        return int(self.fh.truncate(*args))

    def flush(self) -> None:
        self.fh.flush()


_FLUSH_EVERY = 64 << 20


def _quiet_fdatasync(fd: int) -> None:
    with contextlib.suppress(OSError):  # the final fsync reports any real error
        os.fdatasync(fd)


def _rehash(path: Path, git: bool) -> tuple[str, str | None, int]:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\x00" % size, usedforsecurity=False) if git else None
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            sha256.update(block)
            if sha1 is not None:
                sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest() if sha1 is not None else None, size


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)


def fetch(up: Upstream, repo_id: str, commit: str, rf: RemoteFile, dest: Path,
          stop: threading.Event, bar_class: type | None = None,
          have: bytes | None = None) -> Downloaded:
    """``have``: the file's bytes, already read (the remote pre-scan read it whole); the
    HEAD checks still run, and those bytes are verified and written instead of a GET."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils._headers import build_hf_headers

    url = hf_hub_url(repo_id, rf.path, revision=commit, endpoint=up.endpoint)
    try:
        meta = get_hf_file_metadata(url, token=up.token, endpoint=up.endpoint)
    except Exception as exc:
        raise UpstreamError(f"{rf.path}: metadata request failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}"[:400]) from None
    if meta.commit_hash != commit:
        raise UpstreamRejected(R.COMMIT_MISMATCH, f"{rf.path}: X-Repo-Commit is "
                               f"{meta.commit_hash!r}, expected {commit}", rf.path)
    if meta.etag != rf.etag:
        raise UpstreamRejected(R.ETAG_MISMATCH, f"{rf.path}: ETag {meta.etag!r} is not the "
                               f"{'LFS sha256' if rf.lfs else 'git blob sha1'} {rf.etag} "
                               "the tree lists", rf.path)
    if meta.size is not None and meta.size != rf.size:
        raise UpstreamRejected(R.SIZE_MISMATCH, f"{rf.path}: HEAD says {meta.size} bytes, "
                               f"the tree says {rf.size}", rf.path)
    target = meta.location or url
    headers = build_hf_headers(token=up.token) if _same_origin(target, up.endpoint) else {}
    headers["Accept-Encoding"] = "identity"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "xb") as fh:
            w = _HashingWriter(fh, None if rf.lfs else rf.size, stop)
            try:
                if have is not None:
                    w.write(have)
                else:
                    http_get(target, w, headers=headers,  # type: ignore[arg-type]
                             expected_size=rf.size, displayed_filename=rf.path,
                             tqdm_class=bar_class)
            except OSError as exc:
                if exc.errno is not None:
                    raise DiskError(exc.errno, f"{rf.path}: {exc.strerror}") from None
                if "Consistency check failed" in str(exc):
                    raise UpstreamRejected(R.SIZE_MISMATCH, f"{rf.path}: received "
                                           f"{w.written} bytes, metadata says {rf.size}",
                                           rf.path) from None
                raise UpstreamError(f"{rf.path}: download failed: {exc}") from None
            finally:
                w.join_writeback()  # never leave a thread syncing a closed descriptor
            fh.flush()
            os.fsync(fh.fileno())
    except (Cancelled, UpstreamRejected, UpstreamError, DiskError):
        raise
    except OSError as exc:
        raise DiskError(exc.errno or errno.EIO, f"{rf.path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise UpstreamError(f"{rf.path}: download failed: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}"[:400]) from None
    if w.rewound:
        sha256, sha1, size = _rehash(dest, not rf.lfs)
    else:
        sha256 = w.sha256.hexdigest()
        sha1 = w.sha1.hexdigest() if w.sha1 is not None else None
        size = w.written
    if size != rf.size:
        raise UpstreamRejected(R.SIZE_MISMATCH, f"{rf.path}: received {size} bytes, metadata "
                               f"says {rf.size}", rf.path)
    if rf.sha256 is not None:
        if sha256 != rf.sha256:
            raise UpstreamRejected(R.HASH_MISMATCH, f"{rf.path}: sha256 of the download is "
                                   f"{sha256}, the LFS metadata says {rf.sha256}", rf.path)
    elif sha1 != rf.git_oid:
        raise UpstreamRejected(R.HASH_MISMATCH, f"{rf.path}: git blob sha1 of the download is "
                               f"{sha1}, the tree says {rf.git_oid}", rf.path)
    return Downloaded(rf, dest, sha256, size)
