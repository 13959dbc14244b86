"""S3-compatible object storage (placeholder until the S3 backend lands)."""

from __future__ import annotations

from mlwarden.store.blobs.base import BlobBackend
from mlwarden.store.errors import StoreError


class S3Blobs:
    @classmethod
    def from_url(cls, url: str, endpoint: str | None = None) -> BlobBackend:
        raise StoreError("the S3 blob backend is not available yet")
