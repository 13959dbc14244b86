"""Store errors. The registry maps the lookup errors onto the Hub's X-Error-Code values."""

from __future__ import annotations


class StoreError(Exception):
    """Any problem the caller should show as one clean line."""


class InvalidName(StoreError):
    """A repository id, ref name or file path that the store will not accept."""


class RepoNotFound(StoreError):
    pass


class RevisionNotFound(StoreError):
    pass


class EntryNotFound(StoreError):
    pass


class ConflictError(StoreError):
    """A write that conflicts with existing state (duplicate commit id, ref kind clash)."""
