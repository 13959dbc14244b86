"""Bearer tokens: shown once, stored as a salted hash, compared in constant time.

A token is ``mlw_<id>_<secret>``. The id (public, 12 hex) finds the row; the secret
(256 random bits) is checked against HMAC-SHA256(salt, secret). A slow KDF buys nothing
for secrets of that entropy, and a fast check keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from mlwarden.store.errors import InvalidName
from mlwarden.store.names import check_repo_id

_TOKEN_RE = re.compile(r"mlw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_ORG_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
# Package-index scopes: pkg:PATTERN:read|write, PATTERN a canonical name or shell pattern.
_PKG_RE = re.compile(r"[a-z0-9*?](?:[a-z0-9._*?-]{0,198})?")
PKG_PREFIX = "pkg:"


@dataclass(frozen=True)
class Scope:
    """``ORG:read``, ``ORG/NAME:read`` or ``*:read`` (every repository); for the package
    index, ``pkg:PATTERN:read`` (install) or ``pkg:PATTERN:write`` (upload, implies read)."""

    target: str
    access: str = "read"

    def covers(self, repo_id: str) -> bool:
        if self.target.startswith(PKG_PREFIX):
            return False
        if self.target == "*":
            return True
        if "/" in self.target:
            return self.target == repo_id
        return repo_id.split("/", 1)[0] == self.target

    def __str__(self) -> str:
        return f"{self.target}:{self.access}"

    def covers_package(self, project: str, access: str) -> bool:
        """``project`` is a canonical name; write access implies read access."""
        import fnmatch

        if not self.target.startswith(PKG_PREFIX):
            return False
        if access == "write" and self.access != "write":
            return False
        return fnmatch.fnmatchcase(project, self.target[len(PKG_PREFIX):])

    @staticmethod
    def parse(text: str) -> Scope:
        if text.startswith(PKG_PREFIX):
            pattern, sep, access = text[len(PKG_PREFIX):].rpartition(":")
            if not sep:
                pattern, access = text[len(PKG_PREFIX):], "read"
            pattern = re.sub(r"[-_.]+", "-", pattern.lower())
            if access not in ("read", "write") or not _PKG_RE.fullmatch(pattern):
                raise InvalidName(f"scope {text!r}: expected pkg:NAME-OR-PATTERN:read|write")
            return Scope(PKG_PREFIX + pattern, access)
        target, sep, access = text.partition(":")
        access = access if sep else "read"
        if access != "read":
            raise InvalidName(f"scope {text!r}: only 'read' access exists")
        if target != "*":
            if "/" in target:
                check_repo_id(target)
            elif not _ORG_RE.fullmatch(target):
                raise InvalidName(f"scope {text!r}: expected ORG[/NAME]:read or *:read")
        return Scope(target, access)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def can_read(self, repo_id: str) -> bool:
        return any(s.covers(repo_id) for s in self.scopes)

    def can_package(self, project: str, access: str = "read") -> bool:
        return any(s.covers_package(project, access) for s in self.scopes)


def new_token() -> tuple[str, str, str]:
    """(token id, secret, full token text)."""
    tid = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return tid, secret, f"mlw_{tid}_{secret}"


def split_token(text: str) -> tuple[str, str] | None:
    m = _TOKEN_RE.fullmatch(text)
    return (m.group(1), m.group(2)) if m else None


def hash_secret(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode("ascii"), hashlib.sha256).hexdigest()


def check_secret(salt: str, stored_hash: str, secret: str) -> bool:
    return hmac.compare_digest(hash_secret(salt, secret), stored_hash)
