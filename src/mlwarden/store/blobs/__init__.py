"""Blob backends: where the store keeps content-addressed bytes.

``open_blobs(url)`` chooses the implementation once, from a URL; nothing else in mlwarden
asks which one it got:

* ``None`` / a path / ``file:///srv/store/blobs``: local files (the default, embedded);
* ``s3://bucket/prefix``: S3-compatible object storage (AWS S3, MinIO, Ceph RGW). Options
  ride in the query: ``?endpoint=http://minio:9000&region=us-east-1&presign_endpoint=...``;
  credentials come from the standard ``AWS_*`` environment, never from the URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlwarden.store.blobs.base import (
    BlobBackend,
    BlobError,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    BlobReader,
    Digest,
    UploadInfo,
    hash_blob,
    same_location,
)
from mlwarden.store.blobs.filesystem import FilesystemBlobs
from mlwarden.store.errors import StoreError

__all__ = [
    "BlobBackend", "BlobError", "BlobInfo", "BlobMismatch", "BlobNotFound", "BlobReader",
    "Digest", "FilesystemBlobs", "UploadInfo", "hash_blob", "open_blobs", "same_location",
]


def open_blobs(url: str | os.PathLike[str] | None, default_dir: Path | None = None, *,
               s3_endpoint: str | None = None) -> BlobBackend:
    """The backend a URL names. ``s3_endpoint`` overrides the URL's and the environment's
    endpoint (``--s3-endpoint``)."""
    if url is None:
        if default_dir is None:
            raise StoreError("no blob location given")
        return FilesystemBlobs(default_dir)
    text = os.fspath(url)
    if text.startswith("s3://"):
        from mlwarden.store.blobs.s3 import S3Blobs

        return S3Blobs.from_url(text, endpoint=s3_endpoint)
    if text.startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"{text}: file URLs must name a local path (file:///PATH)")
        return FilesystemBlobs(Path(unquote(parts.path)))
    if "://" in text:
        raise StoreError(f"unsupported blob URL {text.split('://', 1)[0]!r}: use a path, "
                         "file:///PATH or s3://BUCKET/PREFIX")
    return FilesystemBlobs(Path(text))
