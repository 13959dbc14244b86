"""Records the store hands out. All frozen: a served answer never changes under a request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def iso(ts: float) -> str:
    """Timestamps in the Hub's format: ``2024-01-02T03:04:05.000Z``."""
    d = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RepoInfo:
    id: str
    created_at: float
    default_branch: str
    gated: bool


@dataclass(frozen=True)
class Commit:
    repo: str
    id: str
    parent: str | None
    message: str
    author: str
    created_at: float
    approved: bool
    branch: str  # the branch this commit was imported for; moved when it is approved
    requested_tags: tuple[str, ...]
    scan_verdict: str | None


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    lfs: bool
    git_oid: str

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_oid


@dataclass(frozen=True)
class Ref:
    name: str
    kind: str  # "branch" | "tag"
    commit: str


@dataclass(frozen=True)
class ApprovalEvent:
    id: int
    repo: str
    commit: str
    action: str  # approve | revoke | move-branch | move-tag
    ref: str | None
    previous: str | None
    actor: str
    at: float
    note: str


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str  # "token:<name>/<id>" or "anonymous"
    client: str
    method: str
    action: str  # resolve | download | info | tree | paths-info | refs | denied
    repo: str | None
    revision: str | None
    commit: str | None
    path: str | None
    status: int
    bytes: int
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"at": iso(self.at), "actor": self.actor, "client": self.client,
                "method": self.method, "action": self.action, "repo": self.repo,
                "revision": self.revision, "commit": self.commit, "path": self.path,
                "status": self.status, "bytes": self.bytes, "detail": self.detail}
