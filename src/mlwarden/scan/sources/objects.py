"""``s3://BUCKET/PREFIX`` and ``gs://BUCKET/PREFIX`` through fsspec (s3fs, gcsfs).

Credentials and endpoints come from each library's standard configuration: ``AWS_*``
variables (``AWS_ENDPOINT_URL`` for MinIO or any S3-compatible store), profiles and
instance roles for s3fs; application default credentials and ``STORAGE_EMULATOR_HOST`` for
gcsfs. Object stores publish no sha256 that the scan could trust, so none is reported
unless ``--hash`` reads the whole object.
"""

from __future__ import annotations

import os
from typing import Any

from mlwarden.scan.sources.base import RemoteFile, RemoteInputError, RemoteTree
from mlwarden.scan.sources.polite import polite_call
from mlwarden.scan.sources.ranges import BLOCK, RangeCache

MAX_FILES = 200_000
_EXTRAS = {"s3": ("s3fs", "mlwarden[s3]"), "gs": ("gcsfs", "mlwarden[gcs]")}


def filesystem(scheme: str) -> Any:
    module, extra = _EXTRAS[scheme]
    try:
        import fsspec

        __import__(module)
        return fsspec.filesystem(scheme, skip_instance_cache=False)
    except ImportError:
        raise RemoteInputError(f"{scheme}:// needs {module}: pip install '{extra}'") from None


def endpoint_for(scheme: str, fs: Any) -> str:
    if scheme == "s3":
        url = (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url") \
            or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return str(url or "https://s3.amazonaws.com").rstrip("/")
    return os.environ.get("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com").rstrip("/")


def open_tree(arg: str) -> RemoteTree:
    scheme = arg.split("://", 1)[0]
    path = arg.split("://", 1)[1].strip("/")
    if not path:
        raise RemoteInputError(f"{arg}: expected {scheme}://BUCKET[/PREFIX]")
    fs = filesystem(scheme)
    endpoint = endpoint_for(scheme, fs)

    def listing() -> dict[str, Any]:
        found = fs.find(path, detail=True, withdirs=False)
        if len(found) > MAX_FILES:
            raise RemoteInputError(f"{arg}: more than {MAX_FILES} objects")
        return dict(found)

    try:
        found = polite_call(endpoint, listing, f"{arg}: listing")
    except RemoteInputError:
        raise
    except FileNotFoundError:
        raise RemoteInputError(f"{arg}: no such bucket or prefix") from None
    except PermissionError as exc:
        raise RemoteInputError(f"{arg}: access denied ({exc})") from None
    except Exception as exc:
        raise RemoteInputError(f"{arg}: listing failed: {type(exc).__name__}: "
                               f"{str(exc)[:300]}") from None
    files: list[RemoteFile] = []
    whole = True
    for key, info in sorted(found.items()):
        key = key.strip("/")
        if info.get("type") == "directory":
            continue
        if key == path:  # the argument names one object
            rel = key.rsplit("/", 1)[-1]
            whole = False
        elif key.startswith(path + "/"):
            rel = key[len(path) + 1:]
        else:
            continue
        size = info.get("size")
        if not isinstance(size, int) or size < 0:
            raise RemoteInputError(f"{arg}: {key!r} has size {size!r}")
        files.append(RemoteFile(rel, size))
    if not files:
        raise RemoteInputError(f"{arg}: no objects under this prefix")
    base = path if whole else path.rsplit("/", 1)[0] if "/" in path else ""

    def opener(f: RemoteFile, cache_options: dict[str, Any]) -> Any:
        key = f"{base}/{f.path}" if base else f.path
        fh = fs.open(key, "rb", block_size=BLOCK, cache_type=RangeCache.name,
                     cache_options=cache_options, size=f.size)
        inner = fh.cache.fetcher

        def fetch(start: int, end: int) -> bytes:
            return bytes(polite_call(endpoint, lambda: inner(start, end),
                                     f"{scheme}://{key} bytes {start}-{end - 1}"))

        fh.cache.fetcher = fetch
        return fh

    display = f"{scheme}://{base}" if base else f"{scheme}://"
    return RemoteTree(kind=scheme, given=arg, display_root=display.rstrip("/"),
                      endpoint=endpoint, files=tuple(files), opener=opener,
                      whole_repository=whole)
