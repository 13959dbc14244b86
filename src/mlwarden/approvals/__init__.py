"""The tamper-evident approval log: every promotion, exception, approval and tag move,
hash-chained and Ed25519-signed, in STORE/approvals.log.

Callers (the registry's ``approve``, the airlock's promotion, the policy's exceptions)::

    from mlwarden.approvals import append
    append(store, "promotion", f"{repo}@{commit}", {"repo": repo, "commit": commit,
           "endpoint": endpoint, "revision": rev, "files": {path: sha256, ...},
           "scanner_version": ..., "policy_version": ..., "verdict": "clean"})
"""

from mlwarden.approvals.errors import ApprovalLogError
from mlwarden.approvals.log import (
    KINDS,
    LogEntry,
    LogVerification,
    append,
    log_path,
    read_log,
    verify_log,
)
from mlwarden.approvals.store_sync import cross_check, record_store_events

__all__ = [
    "KINDS", "ApprovalLogError", "LogEntry", "LogVerification", "append", "cross_check",
    "log_path", "read_log", "record_store_events", "verify_log",
]
