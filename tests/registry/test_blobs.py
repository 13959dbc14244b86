"""The blob backend contract, run against every implementation."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from mlwarden.store import Store, StoreError
from mlwarden.store.blobs import BlobBackend, BlobMismatch, BlobNotFound, Digest, hash_blob


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Trickle(io.RawIOBase):
    """A stream that hands out a few bytes at a time and can fail half-way."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self.data = data
        self.pos = 0
        self.fail_at = fail_at

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise OSError("connection reset")
        n = len(self.data) if n < 0 else min(n, 70_001)
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def test_put_stream_is_hashed_and_visible_only_after_verification(blobs: BlobBackend) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    seen: list[Digest] = []

    def on_verified(d: Digest) -> None:
        assert not blobs.exists(d.sha256)  # verified, not yet visible
        seen.append(d)

    d = blobs.put_stream(Trickle(data), on_verified=on_verified)
    assert d == Digest(sha(data), len(data)) and seen == [d]
    assert blobs.exists(d.sha256) and blobs.size(d.sha256) == len(data)
    assert hash_blob(blobs, d.sha256) == d
    # Storing the same bytes again is a no-op that still reports the digest.
    assert blobs.put_stream(io.BytesIO(data)) == d
    assert [b.sha256 for b in blobs.iter_all()] == [d.sha256]


def test_mismatch_and_failures_leave_nothing(blobs: BlobBackend) -> None:
    data = b"x" * 5000
    with pytest.raises(BlobMismatch):
        blobs.put_stream(io.BytesIO(data), expected_sha256=sha(b"other"))
    with pytest.raises(BlobMismatch):
        blobs.put_stream(io.BytesIO(data), expected_size=4999)
    with pytest.raises(OSError):
        blobs.put_stream(Trickle(os.urandom(300_000), fail_at=150_000))

    def refuse(d: Digest) -> None:
        raise StoreError("lease refused")

    with pytest.raises(StoreError, match="lease refused"):
        blobs.put_stream(io.BytesIO(data), on_verified=refuse)
    assert not blobs.exists(sha(data)) and list(blobs.iter_all()) == []
    assert list(blobs.iter_uploads()) == []


def test_ranges_size_delete(blobs: BlobBackend) -> None:
    data = bytes(range(256)) * 1000
    d = blobs.put_stream(io.BytesIO(data))
    with blobs.open_range(d.sha256, 10, 20) as r:
        assert r.read() == data[10:30]
    with blobs.open_range(d.sha256, len(data) - 5) as r:
        assert r.read() == data[-5:]
    with blobs.open_range(d.sha256) as r:
        got = b"".join(iter(lambda: r.read(4096), b""))
    assert got == data
    with pytest.raises(BlobNotFound):
        blobs.size(sha(b"absent"))
    with pytest.raises(BlobNotFound):
        blobs.open_range(sha(b"absent")).read()
    assert blobs.delete(d.sha256) and not blobs.delete(d.sha256)
    assert not blobs.exists(d.sha256)


def test_put_file_copy_and_move(blobs: BlobBackend, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc" * 1000)
    d = blobs.put_file(src)
    assert src.exists() and d.sha256 == sha(b"abc" * 1000)
    moved = tmp_path / "g.bin"
    moved.write_bytes(b"def" * 1000)
    d2 = blobs.put_file(moved, move=True, known=Digest(sha(b"def" * 1000), 3000))
    assert not moved.exists() and blobs.exists(d2.sha256)
    out = tmp_path / "copy" / "g.bin"
    blobs.fetch_to(d2.sha256, out)
    assert out.read_bytes() == b"def" * 1000


def test_invalid_names_never_reach_the_backend(blobs: BlobBackend) -> None:
    for bad in ("../" + "a" * 61, "A" * 64, "a" * 63, ""):
        with pytest.raises(StoreError):
            blobs.exists(bad)


def test_leases_protect_blobs_between_upload_and_commit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with store.ingest() as session:
        d = session.put_stream(io.BytesIO(b'{"a": 1}\n'), "config.json")
        assert not d.lfs and d.git_oid  # git blob sha1 computed without a size up front
        held = store.db.read("SELECT sha256 FROM blob_leases WHERE holder = ?",
                             (session.holder,))
        assert held == [(d.sha256,)]
    assert store.db.read("SELECT count(*) FROM blob_leases") == [(0,)]
