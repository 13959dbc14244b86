"""Validation of the names that reach the store: repository ids, ref names, file paths.

Everything that is later joined into a filesystem path or a URL goes through here, at
import time and again on every request, so traversal never depends on a later check.
"""

from __future__ import annotations

import re

from mlwarden.store.errors import InvalidName

_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_PATH_BYTES = 1024
MAX_PATH_PARTS = 64


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` with the Hub's character set; no ``..`` or ``--`` (cache-dir separator)."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_PART.fullmatch(p) for p in parts):
        raise InvalidName(f"invalid repository id {repo_id!r}: expected ORG/NAME "
                          "(letters, digits, '.', '_', '-')")
    if ".." in repo_id or "--" in repo_id:
        raise InvalidName(f"invalid repository id {repo_id!r}: '..' and '--' are not allowed")
    return repo_id


def check_ref_name(name: str) -> str:
    """Branch or tag name. A 40-hex name is refused: it would shadow a commit id."""
    if (not _REF.fullmatch(name) or ".." in name or "//" in name or name.endswith(("/", "."))
            or name.endswith(".lock") or COMMIT_RE.fullmatch(name)):
        raise InvalidName(f"invalid ref name {name!r}")
    return name


def check_file_path(path: str) -> str:
    """A relative POSIX path inside a repository, as the Hub client would accept it."""
    if not path or len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidName("file path is empty or too long")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in path):
        raise InvalidName(f"file path {path!r} contains a control character or backslash")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise InvalidName(f"file path {path!r} is absolute")
    parts = path.split("/")
    if len(parts) > MAX_PATH_PARTS or any(p in ("", ".", "..") for p in parts):
        raise InvalidName(f"file path {path!r} has an empty, '.' or '..' component")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidName(f"file path {path!r} is not valid UTF-8") from exc
    return path


def is_commit_id(rev: str) -> bool:
    return COMMIT_RE.fullmatch(rev) is not None
