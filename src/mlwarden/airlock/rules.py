"""Rules for what the airlock sees upstream (``airlock-*``) and what verify finds
(``verify-*``). Integrity failures are malicious: the bytes are not what was claimed."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule

UNSAFE_PATH = rule(
    "airlock-unsafe-path", Verdict.MALICIOUS, Severity.CRITICAL,
    "Upstream lists a file name that escapes the repository",
    "A tree entry with '..', an absolute or drive path, a backslash or a control character. "
    "Joined to a download directory it would write outside it (hub-protocol.md §6, §8).")
BAD_COMMIT = rule(
    "airlock-bad-commit-id", Verdict.MALICIOUS, Severity.HIGH,
    "Upstream commit id is not 40 lower-case hex digits",
    "huggingface_hub writes trees/<sha>.json and refs from this value; a crafted value such "
    "as '../../evil_tree' writes outside the cache (hub-protocol.md §8).")
COMMIT_MISMATCH = rule(
    "airlock-commit-mismatch", Verdict.MALICIOUS, Severity.HIGH,
    "Upstream answers for a different commit than the one resolved",
    "X-Repo-Commit, the refs list or the repository info disagree on the commit: a mirror "
    "that serves other bytes than the pinned commit.")
ETAG_MISMATCH = rule(
    "airlock-etag-mismatch", Verdict.MALICIOUS, Severity.HIGH,
    "Upstream ETag is not what the tree metadata claims",
    "For LFS files the (X-Linked-)ETag must be the LFS sha256, otherwise the git blob sha1. "
    "huggingface_hub names cache blobs after the ETag, so '../..' in it writes outside the "
    "cache (hub-protocol.md §8).")
SIZE_MISMATCH = rule(
    "airlock-size-mismatch", Verdict.MALICIOUS, Severity.HIGH,
    "Upstream sizes disagree",
    "Tree size, LFS size, X-Linked-Size / Content-Length and the bytes received must all "
    "agree.")
HASH_MISMATCH = rule(
    "airlock-hash-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "Downloaded bytes do not match the upstream hash",
    "The sha256 (LFS) or git blob sha1 of what arrived differs from the Hub metadata: the "
    "file was altered in transit or by the mirror.")
BAD_METADATA = rule(
    "airlock-bad-metadata", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Upstream metadata is malformed",
    "Missing or mistyped fields, duplicate paths, too many entries: the pull cannot verify "
    "what it would download.")
VERIFIED = rule(
    "airlock-verified", Verdict.CLEAN, Severity.INFO,
    "File verified against upstream metadata",
    "sha256 and size (LFS) or git blob sha1 and size match the Hub metadata.")

HASH_CHANGED = rule(
    "verify-hash-mismatch", Verdict.MALICIOUS, Severity.CRITICAL,
    "Stored file does not match the manifest",
    "Its sha256 or size differs from model-manifest.yaml: the store was modified after "
    "the pull.")
MISSING = rule(
    "verify-missing", Verdict.UNSCANNABLE, Severity.HIGH,
    "A file or commit the manifest pins is missing from the store",
    "Re-run `mlwarden pull` for the model, or restore the store from backup.")
NOT_APPROVED = rule(
    "verify-not-approved", Verdict.SUSPICIOUS, Severity.MEDIUM,
    "The pinned commit is in the store but not approved for serving",
    "A pull was interrupted between recording the manifest and approving the commit; "
    "re-run `mlwarden pull` to finish it.")
STORE_MISMATCH = rule(
    "verify-store-mismatch", Verdict.MALICIOUS, Severity.HIGH,
    "The store's file table disagrees with the manifest",
    "The commit in the store lists other files, hashes or sizes than the manifest pins.")
REF_MOVED = rule(
    "verify-upstream-ref-moved", Verdict.SUSPICIOUS, Severity.HIGH,
    "Upstream tag or branch now points at another commit",
    "The ref the manifest recorded was moved upstream. A moved tag is a classic supply-chain "
    "attack; review the new commit before pulling it.")
UPSTREAM_CHANGED = rule(
    "verify-upstream-file-changed", Verdict.MALICIOUS, Severity.CRITICAL,
    "Upstream now serves other content for a pinned file",
    "At the pinned commit the Hub metadata for a file differs from the manifest, or the file "
    "is gone: a commit's content cannot change legitimately.")
UPSTREAM_ERROR = rule(
    "verify-upstream-error", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Upstream could not be checked",
    "The endpoint was unreachable or refused the request; the upstream check did not run.")
VERIFY_OK = rule(
    "verify-ok", Verdict.CLEAN, Severity.INFO,
    "File matches the manifest",
    "sha256 and size re-computed from the store match model-manifest.yaml.")
