"""Our two tables in the store's database, created on first use:

* ``attestations``: signed documents about a commit (its signed ML-BOM and the BOM's
  signature, provenance records), kept as text so they work with any blob backend and with
  PostgreSQL shared by several hosts;
* ``deployments``: every deploy and restore of a commit to a deployment (what trace answers
  "which deployments?" from, and what restore moves).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ATTESTATION_KINDS = ("sbom", "sbom-signature", "provenance")
_DDL = """
CREATE TABLE IF NOT EXISTS attestations (
  id {serial}, repo TEXT NOT NULL, commit_id TEXT NOT NULL, kind TEXT NOT NULL,
  sha256 TEXT NOT NULL, content TEXT NOT NULL, actor TEXT NOT NULL, created_at {real} NOT NULL);
CREATE INDEX IF NOT EXISTS attestations_commit ON attestations (repo, commit_id);
CREATE TABLE IF NOT EXISTS deployments (
  id {serial}, name TEXT NOT NULL, path TEXT NOT NULL, repo TEXT NOT NULL,
  commit_id TEXT NOT NULL, release TEXT NOT NULL, action TEXT NOT NULL, actor TEXT NOT NULL,
  at {real} NOT NULL, sbom_sha256 TEXT);
CREATE INDEX IF NOT EXISTS deployments_name ON deployments (name, at)
"""
_DIALECT = {"sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"},
            "postgresql": {"serial": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"}}
_ready: set[int] = set()


def ensure_schema(store: Any) -> None:
    db = store.db
    if id(db) in _ready:
        return
    stmts = [s.strip() for s in _DDL.format(**_DIALECT[db.dialect]).split(";") if s.strip()]
    with db.transaction() as tx:
        for s in stmts:
            tx.execute(s)
    _ready.add(id(db))


@dataclass(frozen=True)
class Attestation:
    id: int
    repo: str
    commit: str
    kind: str
    sha256: str
    content: str
    actor: str
    created_at: float


def attach(store: Any, repo: str, commit: str, kind: str, content: str | bytes,
           actor: str) -> str:
    """Store a document about ``repo@commit``; returns its sha256 (of the UTF-8 bytes)."""
    if kind not in ATTESTATION_KINDS:
        raise ValueError(f"unknown attestation kind {kind!r}")
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    ensure_schema(store)
    with store.db.transaction() as tx:
        if not tx.execute("SELECT 1 FROM attestations WHERE repo = ? AND commit_id = ? AND "
                          "kind = ? AND sha256 = ?", (repo, commit, kind, sha)):
            tx.execute("INSERT INTO attestations (repo, commit_id, kind, sha256, content, "
                       "actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (repo, commit, kind, sha, text, actor, time.time()))
    return sha


def attestations(store: Any, repo: str | None = None, commit: str | None = None,
                 kind: str | None = None) -> list[Attestation]:
    ensure_schema(store)
    sql = ("SELECT id, repo, commit_id, kind, sha256, content, actor, created_at "
           "FROM attestations WHERE 1 = 1")
    params: list[str] = []
    for col, v in (("repo", repo), ("commit_id", commit), ("kind", kind)):
        if v is not None:
            sql += f" AND {col} = ?"
            params.append(v)
    return [Attestation(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                        str(r[6]), float(r[7]))
            for r in store.db.read(sql + " ORDER BY id", params)]


@dataclass(frozen=True)
class DeploymentEvent:
    id: int
    name: str
    path: str
    repo: str
    commit: str
    release: str
    action: str  # deploy | restore
    actor: str
    at: float
    sbom_sha256: str | None


def record_deployment(store: Any, name: str, path: str, repo: str, commit: str, release: str,
                      action: str, actor: str, sbom_sha256: str | None) -> None:
    ensure_schema(store)
    with store.db.transaction() as tx:
        tx.execute("INSERT INTO deployments (name, path, repo, commit_id, release, action, "
                   "actor, at, sbom_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (name, path, repo, commit, release, action, actor, time.time(),
                    sbom_sha256))


def deployment_events(store: Any, name: str | None = None) -> list[DeploymentEvent]:
    ensure_schema(store)
    sql = ("SELECT id, name, path, repo, commit_id, release, action, actor, at, sbom_sha256 "
           "FROM deployments")
    params: Sequence[str] = ()
    if name is not None:
        sql += " WHERE name = ?"
        params = (name,)
    return [DeploymentEvent(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                            str(r[6]), str(r[7]), float(r[8]),
                            None if r[9] is None else str(r[9]))
            for r in store.db.read(sql + " ORDER BY id", params)]


def current_deployments(store: Any) -> list[DeploymentEvent]:
    """The latest event of each deployment name: what each one serves now."""
    latest: dict[str, DeploymentEvent] = {}
    for e in deployment_events(store):
        latest[e.name] = e
    return sorted(latest.values(), key=lambda e: e.name)
