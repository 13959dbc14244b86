"""Where scanned bytes come from besides local paths: ``hf://`` repositories (the Hub, a
mirror, ``mlwarden serve``), ``s3://`` and ``gs://`` prefixes, read with HTTP range
requests through fsspec. A remote file is just another Source: readers keep their
bounded-reading contract and never know the difference."""

from __future__ import annotations

from mlwarden.scan.sources.base import RemoteFile, RemoteInputError, RemoteTree

SCHEMES = ("hf://", "s3://", "gs://")


def is_remote(arg: str) -> bool:
    return arg.startswith(SCHEMES)


def open_remote(arg: str, endpoint: str | None = None) -> RemoteTree:
    """Resolve a remote argument to its tree of files (metadata only; no content read).
    ``endpoint`` overrides huggingface_hub's endpoint for hf:// (a registry's URL)."""
    if arg.startswith("hf://"):
        from mlwarden.scan.sources import hf

        return hf.open_tree(arg, endpoint)
    if arg.startswith(("s3://", "gs://")):
        from mlwarden.scan.sources import objects

        return objects.open_tree(arg)
    raise RemoteInputError(f"{arg}: not a remote URL (hf://, s3://, gs://)")


__all__ = ["SCHEMES", "RemoteFile", "RemoteInputError", "RemoteTree", "is_remote",
           "open_remote"]
