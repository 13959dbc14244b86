"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph RGW), through boto3.

Keys: ``PREFIX/sha256/ab/cdef...`` for blobs, ``PREFIX/.uploads/<uuid>`` for uploads whose
hash is not known in advance. How a blob becomes visible only after verification:

* small blobs (one part) are read into memory, hashed, then written with one PutObject
  carrying ``x-amz-checksum-sha256``, so the server checks the bytes it stored;
* large blobs are multipart uploads, hashed while they stream, each part carrying its own
  sha256 checksum. A multipart object does not exist until CompleteMultipartUpload, which
  is sent only after the whole stream hashed to the expected digest (an expected sha256
  uploads straight to the final key); otherwise the upload is aborted. Without an
  expected digest the parts go to an upload key, and a server-side copy places the blob
  once its name is known.

Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
profiles, instance and pod roles); the endpoint from ``--s3-endpoint``, the URL's
``endpoint=`` option, or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from mlwarden.store.blobs.base import (
    BlobError,
    BlobInfo,
    BlobNotFound,
    Digest,
    OnVerified,
    Readable,
    Tap,
    UploadInfo,
    check_sha256,
    verify_digest,
)
from mlwarden.store.errors import StoreError

MiB = 1 << 20
PART_SIZE = 16 * MiB  # also the largest blob written with a single PutObject
MIN_PART = 5 * MiB  # S3's smallest part (except the last)
MAX_PARTS = 10_000
CONCURRENCY = 4  # parts in flight per upload (memory: CONCURRENCY x part size)
_OPTIONS = {"endpoint", "region", "presign_endpoint", "addressing", "part_size_mib",
            "checksums"}
_HEX = frozenset("0123456789abcdef")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _read_full(reader: Readable, n: int) -> bytes:
    """Up to ``n`` bytes: readers may return short reads before EOF."""
    chunks: list[bytes] = []
    left = n
    while left > 0:
        block = reader.read(left)
        if not block:
            break
        chunks.append(block)
        left -= len(block)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Vanished(BlobError):
    """Deduplicated against a blob that gc removed before this write leased it."""


class _Body:
    """A GetObject body as a BlobReader."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int = -1, /) -> bytes:
        if self._body is None:
            return b""
        try:
            data: bytes = self._body.read(None if n < 0 else n)
        except Exception as exc:  # urllib3/botocore read errors: one clean message
            raise BlobError(f"object storage read failed: {exc}") from exc
        return data

    def close(self) -> None:
        if self._body is not None:
            self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class S3Blobs:
    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None, presign_endpoint: str | None = None,
                 addressing: str | None = None, part_size: int = PART_SIZE,
                 checksums: bool = True, options: dict[str, str] | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise StoreError("S3 blobs need boto3: pip install 'mlwarden[s3]'") from exc
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = max(MIN_PART, part_size)
        self.checksums = checksums
        query = urlencode(sorted((options or {}).items()))
        self.url = f"s3://{bucket}/{self.prefix}" + (f"?{query}" if query else "")
        env_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL")
        self.endpoint = endpoint or env_endpoint or None
        region = region or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        # MinIO, Ceph and test servers answer on one host: path-style unless told otherwise.
        style = addressing or ("path" if self.endpoint else "auto")
        config = Config(
            s3={"addressing_style": style}, signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32, connect_timeout=10, read_timeout=60,
            # Older MinIO/Ceph releases refuse the CRC trailers newer botocore adds by
            # default; integrity comes from our own sha256 checksums instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self._client: Any = session.client("s3", endpoint_url=self.endpoint,
                                           region_name=region, config=config)
        self._presigner: Any = self._client if not presign_endpoint else session.client(
            "s3", endpoint_url=presign_endpoint, region_name=region, config=config)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, endpoint: str | None = None) -> S3Blobs:
        bucket, prefix, opts = parse_s3_url(url)
        try:
            part = int(opts.get("part_size_mib", PART_SIZE // MiB)) * MiB
        except ValueError:
            raise StoreError(f"{url}: part_size_mib must be a number") from None
        return cls(bucket, prefix, endpoint=endpoint or opts.get("endpoint"),
                   region=opts.get("region"), presign_endpoint=opts.get("presign_endpoint"),
                   addressing=opts.get("addressing"), part_size=part,
                   checksums=opts.get("checksums", "1") not in ("0", "false", "no"),
                   options=opts)

    # ------------------------------------------------------------------ keys

    def key(self, sha256: str) -> str:
        check_sha256(sha256)
        return self._k(f"sha256/{sha256[:2]}/{sha256[2:]}")

    def _k(self, rest: str) -> str:
        return f"{self.prefix}/{rest}" if self.prefix else rest

    def _error(self, what: str, exc: Exception) -> BlobError:
        code = _code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            return BlobNotFound(f"{what}: not in the bucket")
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return BlobError("no AWS credentials: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY (or a profile or role)")
        if code == "NoSuchBucket":
            return BlobError(f"bucket {self.bucket} does not exist")
        return BlobError(f"object storage: {what}: {exc}")

    def _pool_get(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY * 2,
                                                thread_name_prefix="s3-part")
            return self._pool

    # ------------------------------------------------------------------ writing

    def put_stream(self, reader: Readable, *, expected_sha256: str | None = None,
                   expected_size: int | None = None, tap: Tap | None = None,
                   on_verified: OnVerified | None = None) -> Digest:
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        part_size = self.part_size
        if expected_size is not None:
            part_size = max(part_size, -(-expected_size // (MAX_PARTS - 1000)))
        first = _read_full(reader, part_size)
        h = hashlib.sha256(first)
        if tap is not None and first:
            tap(first)
        if len(first) < part_size:  # the whole blob fits in one request
            digest = Digest(h.hexdigest(), len(first))
            verify_digest(digest, expected_sha256, expected_size)
            if on_verified is not None:
                on_verified(digest)
            if not self.exists(digest.sha256):
                self._put_small(self.key(digest.sha256), first, h.digest())
            return digest
        if expected_sha256 is not None and self.exists(expected_sha256):
            digest = self._drain(reader, h, len(first), tap)  # already stored: check only
            verify_digest(digest, expected_sha256, expected_size)
            if on_verified is not None:
                on_verified(digest)  # leased now: gc keeps it from here on
            if not self.exists(expected_sha256):  # gc took it before the lease
                raise _Vanished(f"blob {expected_sha256} was removed while it was "
                                "being stored again; store it once more")
            return digest
        target = self.key(expected_sha256) if expected_sha256 else \
            self._k(f".uploads/{uuid.uuid4().hex}")
        digest = self._multipart(target, reader, first, h, part_size, tap,
                                 expected_sha256, expected_size, on_verified)
        if target != self.key(digest.sha256):
            self._place_upload(target, digest)
        return digest

    def _put_small(self, key: str, data: bytes, sha: bytes) -> None:
        extra = {"ChecksumSHA256": _b64(sha)} if self.checksums else {}
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        except Exception as exc:
            raise self._error(f"writing {key}", exc) from exc

    def _drain(self, reader: Readable, h: Any, n: int, tap: Tap | None) -> Digest:
        while True:
            block = reader.read(PART_SIZE)
            if not block:
                return Digest(h.hexdigest(), n)
            h.update(block)
            n += len(block)
            if tap is not None:
                tap(block)

    def _multipart(self, key: str, reader: Readable, first: bytes, h: Any, part_size: int,
                   tap: Tap | None, expected_sha256: str | None, expected_size: int | None,
                   on_verified: OnVerified | None) -> Digest:
        extra = {"ChecksumAlgorithm": "SHA256"} if self.checksums else {}
        try:
            upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        except Exception as exc:
            raise self._error(f"starting an upload to {key}", exc) from exc
        upload_id = upload["UploadId"]
        pool = self._pool_get()
        inflight: list[Future[dict[str, Any]]] = []
        done: list[dict[str, Any]] = []
        completed = False
        try:
            number, block, total = 1, first, len(first)
            while block:
                if len(inflight) >= CONCURRENCY:
                    done.append(inflight.pop(0).result())
                inflight.append(pool.submit(self._upload_part, key, upload_id, number, block))
                # Parts grow past 1000 so an unknown-length stream fits in 10,000 parts.
                size = part_size * (1 + number // 1000)
                block = _read_full(reader, size)
                if block:
                    h.update(block)
                    total += len(block)
                    if tap is not None:
                        tap(block)
                    number += 1
                    if number > MAX_PARTS:
                        raise BlobError("blob too large for one multipart upload")
            done.extend(f.result() for f in inflight)
            inflight.clear()
            digest = Digest(h.hexdigest(), total)
            verify_digest(digest, expected_sha256, expected_size)
            if on_verified is not None:
                on_verified(digest)
            try:
                self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": done})
            except Exception as exc:
                raise self._error(f"completing the upload to {key}", exc) from exc
            completed = True
            return digest
        finally:
            if not completed:
                for f in inflight:
                    f.cancel()
                with contextlib.suppress(Exception):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                        UploadId=upload_id)

    def _upload_part(self, key: str, upload_id: str, number: int,
                     data: bytes) -> dict[str, Any]:
        part: dict[str, Any] = {"PartNumber": number}
        extra: dict[str, str] = {}
        if self.checksums:
            extra["ChecksumSHA256"] = part["ChecksumSHA256"] = \
                _b64(hashlib.sha256(data).digest())
        try:
            r = self._client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                         PartNumber=number, Body=data, **extra)
        except Exception as exc:
            raise self._error(f"uploading part {number} of {key}", exc) from exc
        part["ETag"] = r["ETag"]
        return part

    def _place_upload(self, upload_key: str, digest: Digest) -> None:
        """Server-side copy of a verified upload to its content address."""
        final = self.key(digest.sha256)
        try:
            if not self.exists(digest.sha256):
                self._client.copy({"Bucket": self.bucket, "Key": upload_key}, self.bucket,
                                  final)  # managed: multipart copy above 5 GiB
        except Exception as exc:
            raise self._error(f"placing {final}", exc) from exc
        finally:
            with contextlib.suppress(Exception):
                self._client.delete_object(Bucket=self.bucket, Key=upload_key)

    def put_file(self, path: Path, *, move: bool = False, known: Digest | None = None,
                 on_verified: OnVerified | None = None) -> Digest:
        try:
            for attempt in (1, 2):
                with open(path, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    try:
                        digest = self.put_stream(
                            fh, expected_sha256=known.sha256 if known else None,
                            expected_size=size if known is None else known.size,
                            on_verified=on_verified)
                        break
                    except _Vanished:
                        if attempt == 2:
                            raise
            if move:
                os.unlink(path)
        except OSError as exc:
            raise BlobError(f"{path}: {exc.strerror or exc}") from exc
        return digest

    # ------------------------------------------------------------------ reading

    def _head(self, sha256: str) -> dict[str, Any] | None:
        key = self.key(sha256)
        try:
            r: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=key)
            return r
        except Exception as exc:
            err = self._error(key, exc)
            if isinstance(err, BlobNotFound):
                return None
            raise err from exc

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise BlobNotFound(f"blob {sha256} is not in the store")
        return int(head["ContentLength"])

    def open_range(self, sha256: str, start: int = 0, length: int | None = None) -> _Body:
        key = self.key(sha256)
        if length == 0:
            return _Body(None)
        rng = f"bytes={start}-" + (str(start + length - 1) if length is not None else "")
        try:
            kw = {"Range": rng} if (start or length is not None) else {}
            r = self._client.get_object(Bucket=self.bucket, Key=key, **kw)
        except Exception as exc:
            if _code(exc) == "InvalidRange":  # start at or past the end
                return _Body(None)
            err = self._error(key, exc)
            if isinstance(err, BlobNotFound):
                raise BlobNotFound(f"blob {sha256} is not in the store") from None
            raise err from exc
        return _Body(r["Body"])

    def presign(self, sha256: str, ttl: int, *, filename: str | None = None) -> str | None:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if filename:
            params["ResponseContentDisposition"] = \
                f"attachment; filename*=UTF-8''{quote(filename, safe='')}"
        try:
            url: str = self._presigner.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=int(ttl))
        except Exception as exc:
            raise self._error("presigning", exc) from exc
        return url

    def local_path(self, sha256: str) -> Path | None:
        return None

    def fetch_to(self, sha256: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        try:
            with self.open_range(sha256) as r, open(dest, "wb") as out:
                while True:
                    block = r.read(4 * MiB)
                    if not block:
                        break
                    h.update(block)
                    out.write(block)
            if h.hexdigest() != sha256:
                raise BlobError(f"blob {sha256} in the bucket hashes to {h.hexdigest()}")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise

    # ------------------------------------------------------------------ maintenance

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                yield from page.get("Contents", [])
        except Exception as exc:
            raise self._error(f"listing {prefix}", exc) from exc

    def iter_all(self) -> Iterator[BlobInfo]:
        base = self._k("sha256/")
        for obj in self._list(base):
            rest = obj["Key"][len(base):]
            sub, _, name = rest.partition("/")
            sha = sub + name
            if len(sub) == 2 and len(name) == 62 and _HEX.issuperset(sha):
                yield BlobInfo(sha, int(obj["Size"]), obj["LastModified"].timestamp())

    def iter_uploads(self) -> Iterator[UploadInfo]:
        base = self._k(".uploads/")
        for obj in self._list(base):
            yield UploadInfo("obj:" + obj["Key"][len(base):], int(obj["Size"]),
                             obj["LastModified"].timestamp())
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._k(""))
            for page in pages:
                for u in page.get("Uploads", []):
                    yield UploadInfo(f"mpu:{u['UploadId']}:{u['Key']}", 0,
                                     u["Initiated"].timestamp())
        except Exception as exc:
            raise self._error("listing uploads", exc) from exc

    def discard_upload(self, name: str) -> bool:
        kind, _, rest = name.partition(":")
        try:
            if kind == "obj" and rest and "/" not in rest:
                self._client.delete_object(Bucket=self.bucket, Key=self._k(f".uploads/{rest}"))
            elif kind == "mpu":
                upload_id, _, key = rest.partition(":")
                if not key.startswith(self._k("")):
                    raise BlobError(f"upload {name!r} is outside this store")
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                    UploadId=upload_id)
            else:
                raise BlobError(f"not an upload name: {name!r}")
        except BlobError:
            raise
        except Exception as exc:
            if _code(exc) not in ("NoSuchUpload", "NoSuchKey", "404"):
                raise self._error(f"discarding {name}", exc) from exc
            return False
        return True

    def delete(self, sha256: str) -> bool:
        if not self.exists(sha256):
            return False
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            raise self._error(f"deleting {sha256}", exc) from exc
        return True

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self._error(f"bucket {self.bucket}", exc) from exc

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
        with contextlib.suppress(Exception):
            self._client.close()
            if self._presigner is not self._client:
                self._presigner.close()


def parse_s3_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(bucket, prefix, options) of ``s3://BUCKET[/PREFIX][?options]``; no client needed."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"{url}: expected s3://BUCKET[/PREFIX]")
    if "@" in parts.netloc:
        raise StoreError("credentials do not belong in the blob URL: use the AWS_* "
                         "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
    opts = dict(parse_qsl(parts.query))
    unknown = set(opts) - _OPTIONS
    if unknown:
        raise StoreError(f"{url}: unknown option(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(_OPTIONS))})")
    return parts.netloc, parts.path, opts


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
