"""The model store shared by ``mlwarden import``, ``serve`` and the airlock's ``pull``.

Typical promotion of a quarantined download (what ``pull`` does)::

    store = Store.open(root)
    with store.staging() as quarantine:      # same filesystem as the blobs
        ...download into quarantine, scan, check policy...
        commit = store.commit_directory(quarantine, "org/name", move=True,
                                        commit_id=upstream_sha, message="pull")
"""

from mlwarden.store.errors import (
    ConflictError,
    EntryNotFound,
    InvalidName,
    RepoNotFound,
    RevisionNotFound,
    StoreError,
)
from mlwarden.store.model import ApprovalEvent, AuditEntry, Commit, FileEntry, Ref, RepoInfo
from mlwarden.store.store import Store

__all__ = [
    "ApprovalEvent", "AuditEntry", "Commit", "ConflictError", "EntryNotFound", "FileEntry",
    "InvalidName", "Ref", "RepoInfo", "RepoNotFound", "RevisionNotFound", "Store", "StoreError",
]
