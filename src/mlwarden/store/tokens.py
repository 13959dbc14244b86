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


# What each access level grants. Write and approve are separate rights (a pusher need not be
# a reviewer); both include reading the repositories they cover. ``admin`` (only as
# ``*:admin``) manages tokens and deletes repositories.
ACCESS_LEVELS = ("read", "write", "approve", "admin")
_GRANTS = {"read": frozenset({"read"}), "write": frozenset({"read", "write"}),
           "approve": frozenset({"read", "approve"}),
           "admin": frozenset({"read", "write", "approve", "admin"})}


@dataclass(frozen=True)
class Scope:
    """``ORG:ACCESS``, ``ORG/NAME:ACCESS`` or ``*:ACCESS`` (every repository); ACCESS is
    read, write or approve; ``*:admin`` grants everything. For the package index,
    ``pkg:PATTERN:read`` (install) or ``pkg:PATTERN:write`` (upload, implies read)."""

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

    def allows(self, repo_id: str, access: str) -> bool:
        return access in _GRANTS[self.access] and self.covers(repo_id)

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
        if access not in ACCESS_LEVELS:
            raise InvalidName(f"scope {text!r}: access must be one of "
                              f"{', '.join(ACCESS_LEVELS)}")
        if access == "admin" and target != "*":
            raise InvalidName(f"scope {text!r}: admin access exists only as '*:admin'")
        if target != "*":
            if "/" in target:
                check_repo_id(target)
            elif not _ORG_RE.fullmatch(target):
                raise InvalidName(f"scope {text!r}: expected ORG[/NAME]:{access} or *:{access}")
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
        return self.can(repo_id, "read")

    def can(self, repo_id: str, access: str) -> bool:
        return any(s.allows(repo_id, access) for s in self.scopes)

    @property
    def is_admin(self) -> bool:
        return any(s.access == "admin" for s in self.scopes)

    def can_anywhere(self, access: str) -> bool:
        """Whether some scope grants ``access`` (to at least one model repository)."""
        return any(access in _GRANTS[s.access] for s in self.scopes
                   if not s.target.startswith(PKG_PREFIX))

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
