"""What the write API and the review console add to the store: pushed commits awaiting
review, review votes, refused pushes, pull requests (``refs/pr/N``), token owners, console
sessions and server secrets.

Additive by design: these tables are created (IF NOT EXISTS) when a component that needs
them opens the store, and the store's own tables are only written through the same SQL
the store uses (a ref move always leaves an ``approvals`` event, which the signed approval
log mirrors). A pushed commit is an ordinary unapproved commit of the store: invisible to
readers until it is approved, whatever this module records about it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlwarden.store.db import Tx
from mlwarden.store.errors import ConflictError, RepoNotFound, RevisionNotFound, StoreError
from mlwarden.store.model import Commit
from mlwarden.store.names import check_ref_name, check_repo_id
from mlwarden.store.store import Store
from mlwarden.util.actor import default_actor

_TYPES = {"sqlite": {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
          "postgresql": {"real": "DOUBLE PRECISION", "serial": "BIGSERIAL PRIMARY KEY"}}

_DDL = """
CREATE TABLE IF NOT EXISTS push_commits (
  repo TEXT NOT NULL, commit_id TEXT NOT NULL, target_ref TEXT NOT NULL, base_commit TEXT,
  pr_num INTEGER, pusher TEXT NOT NULL, identity TEXT NOT NULL, token_id TEXT,
  required_approvals INTEGER NOT NULL, forbid_self INTEGER NOT NULL,
  superseded_by TEXT, created_at {real} NOT NULL, PRIMARY KEY (repo, commit_id));
CREATE TABLE IF NOT EXISTS commit_reports (
  repo TEXT NOT NULL, commit_id TEXT NOT NULL, report TEXT NOT NULL,
  created_at {real} NOT NULL, PRIMARY KEY (repo, commit_id));
CREATE TABLE IF NOT EXISTS review_votes (
  id {serial}, repo TEXT NOT NULL, commit_id TEXT NOT NULL, decision TEXT NOT NULL,
  actor TEXT NOT NULL, identity TEXT NOT NULL, note TEXT NOT NULL, at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS push_refusals (
  id {serial}, repo TEXT NOT NULL, target_ref TEXT NOT NULL, actor TEXT NOT NULL,
  identity TEXT NOT NULL, at {real} NOT NULL, rules TEXT NOT NULL, message TEXT NOT NULL,
  report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pull_requests (
  repo TEXT NOT NULL, num INTEGER NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL,
  author TEXT NOT NULL, base_ref TEXT NOT NULL, status TEXT NOT NULL,
  created_at {real} NOT NULL, PRIMARY KEY (repo, num));
CREATE TABLE IF NOT EXISTS token_owners (token_id TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (
  id_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL, csrf TEXT NOT NULL,
  created_at {real} NOT NULL, expires_at {real} NOT NULL, last_seen {real} NOT NULL);
CREATE TABLE IF NOT EXISTS service_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blob_git_sha1 (sha256 TEXT PRIMARY KEY, git_sha1 TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS review_votes_commit ON review_votes (repo, commit_id);
CREATE INDEX IF NOT EXISTS push_refusals_at ON push_refusals (at)
"""

PR_PREFIX = "refs/pr/"


def pr_ref(num: int) -> str:
    return f"{PR_PREFIX}{num}"


def pr_number(ref: str) -> int | None:
    """N for ``refs/pr/N`` (N a positive decimal without leading zeros), else None."""
    tail = ref[len(PR_PREFIX):] if ref.startswith(PR_PREFIX) else ""
    return int(tail) if tail.isdigit() and not tail.startswith("0") and len(tail) < 10 \
        else None


@dataclass(frozen=True)
class PushRecord:
    repo: str
    commit: str
    target_ref: str  # a branch or refs/pr/N
    base: str | None  # the commit this push was applied to (approved or pending)
    pr_num: int | None
    pusher: str  # audit actor, e.g. token:ci/0123abcd
    identity: str  # the pushing token's owner: who may not approve it under two-person review
    token_id: str | None
    required_approvals: int
    forbid_self: bool
    superseded_by: str | None
    created_at: float


@dataclass(frozen=True)
class Vote:
    id: int
    repo: str
    commit: str
    decision: str  # approve | refuse
    actor: str
    identity: str
    note: str
    at: float


@dataclass(frozen=True)
class Refusal:
    id: int
    repo: str
    target_ref: str
    actor: str
    identity: str
    at: float
    rules: tuple[str, ...]
    message: str
    report: dict[str, Any]


@dataclass(frozen=True)
class PullRequest:
    repo: str
    num: int
    title: str
    description: str
    author: str
    base_ref: str
    status: str  # open | merged | closed
    created_at: float

    @property
    def ref(self) -> str:
        return pr_ref(self.num)


@dataclass(frozen=True)
class Session:
    token_id: str
    csrf: str
    created_at: float
    expires_at: float


_PUSH_COLS = ("repo, commit_id, target_ref, base_commit, pr_num, pusher, identity, token_id, "
              "required_approvals, forbid_self, superseded_by, created_at")


def _push(r: Sequence[Any]) -> PushRecord:
    return PushRecord(str(r[0]), str(r[1]), str(r[2]), r[3], None if r[4] is None else int(r[4]),
                      str(r[5]), str(r[6]), r[7], int(r[8]), bool(r[9]), r[10], float(r[11]))


def _hash_session(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class PushStore:
    """The write-side records of one ``Store``; ``PushStore.open(store)`` creates its tables."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    @classmethod
    def open(cls, store: Store) -> PushStore:
        ps = cls(store)
        if not getattr(store, "_push_schema", False):
            ddl = _DDL.format(**_TYPES[store.db.dialect])
            with store.lock("schema:push"), store.db.transaction() as tx:
                for stmt in (s.strip() for s in ddl.split(";")):
                    if stmt:
                        tx.execute(stmt)
            store._push_schema = True  # type: ignore[attr-defined]
        return ps

    # ------------------------------------------------------------------ secrets

    def secret(self, name: str) -> bytes:
        """A random 256-bit server secret shared by every process serving this store."""
        rows = self.db.read("SELECT value FROM service_secrets WHERE name = ?", (name,))
        if rows:
            return bytes.fromhex(str(rows[0][0]))
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT value FROM service_secrets WHERE name = ?", (name,))
            if not rows:
                value = secrets.token_hex(32)
                tx.execute("INSERT INTO service_secrets (name, value) VALUES (?, ?)",
                           (name, value))
                return bytes.fromhex(value)
        return bytes.fromhex(str(rows[0][0]))

    # ------------------------------------------------------------------ token owners

    def set_owner(self, token_id: str, owner: str) -> None:
        if not owner or len(owner) > 100 or any(ord(c) < 0x20 for c in owner):
            raise StoreError("token owner must be 1-100 printable characters")
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM token_owners WHERE token_id = ?", (token_id,))
            tx.execute("INSERT INTO token_owners (token_id, owner) VALUES (?, ?)",
                       (token_id, owner))

    def owners(self) -> dict[str, str]:
        return {str(r[0]): str(r[1]) for r in self.db.read(
            "SELECT token_id, owner FROM token_owners")}

    def owner(self, token_id: str, default: str) -> str:
        """Who a token acts for (its owner; the token's name when none was recorded)."""
        rows = self.db.read("SELECT owner FROM token_owners WHERE token_id = ?", (token_id,))
        return str(rows[0][0]) if rows else default

    # ------------------------------------------------------------------ pushed commits

    def record_push(self, rec: PushRecord, report: dict[str, Any]) -> None:
        with self.db.transaction() as tx:
            tx.execute(f"INSERT INTO push_commits ({_PUSH_COLS}) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (rec.repo, rec.commit, rec.target_ref, rec.base, rec.pr_num, rec.pusher,
                        rec.identity, rec.token_id, rec.required_approvals,
                        int(rec.forbid_self), rec.superseded_by, rec.created_at))
            self._put_report_tx(tx, rec.repo, rec.commit, report)

    def push(self, repo: str, commit: str) -> PushRecord | None:
        rows = self.db.read(f"SELECT {_PUSH_COLS} FROM push_commits WHERE repo = ? AND "
                            "commit_id = ?", (repo, commit))
        return _push(rows[0]) if rows else None

    def pushes(self, repo: str | None = None) -> list[PushRecord]:
        sql = f"SELECT {_PUSH_COLS} FROM push_commits"
        params: tuple[str, ...] = ()
        if repo is not None:
            sql += " WHERE repo = ?"
            params = (repo,)
        return [_push(r) for r in self.db.read(sql + " ORDER BY created_at", params)]

    def mark_superseded(self, repo: str, commits: Sequence[str], by: str) -> None:
        if not commits:
            return
        with self.db.transaction() as tx:
            tx.executemany("UPDATE push_commits SET superseded_by = ? WHERE repo = ? AND "
                           "commit_id = ? AND superseded_by IS NULL",
                           [(by, repo, c) for c in commits])

    def push_head(self, repo: str, ref: str) -> str | None:
        """The commit a new push to ``ref`` builds on: the newest pending push in the chain
        that starts at the ref's approved head (so unapproved pushes stack up for review),
        else the approved head itself. None for a ref that does not exist."""
        head = self._approved_ref(repo, ref)
        pending = [p for p in self.pushes(repo) if p.target_ref == ref
                   and p.superseded_by is None and not self._decided(repo, p.commit)]
        children: dict[str | None, list[PushRecord]] = {}
        for p in pending:
            children.setdefault(p.base, []).append(p)
        cur = head
        seen: set[str] = set()
        while children.get(cur):
            nxt = max(children[cur], key=lambda p: p.created_at).commit
            if nxt in seen:
                break
            seen.add(nxt)
            cur = nxt
        return cur

    def _approved_ref(self, repo: str, ref: str) -> str | None:
        rows = self.db.read("SELECT r.commit_id FROM refs r JOIN commits c ON c.repo = r.repo "
                            "AND c.id = r.commit_id WHERE r.repo = ? AND r.name = ? AND "
                            "c.approved = 1", (repo, ref))
        return str(rows[0][0]) if rows else None

    def _decided(self, repo: str, commit: str) -> bool:
        """Approved, refused or revoked: no longer something a push can build on."""
        rows = self.db.read("SELECT approved FROM commits WHERE repo = ? AND id = ?",
                            (repo, commit))
        if not rows or rows[0][0]:
            return True
        return bool(self.db.read("SELECT 1 FROM review_votes WHERE repo = ? AND commit_id = ? "
                                 "AND decision = 'refuse' LIMIT 1", (repo, commit))) or \
            bool(self.db.read("SELECT 1 FROM approvals WHERE repo = ? AND commit_id = ? AND "
                              "action = 'revoke' LIMIT 1", (repo, commit)))

    def pending_chain(self, repo: str, commit: str) -> list[str]:
        """Pending pushed ancestors of ``commit`` (newest first): approving it includes them."""
        out: list[str] = []
        rec = self.push(repo, commit)
        while rec is not None and rec.base is not None:
            parent = self.push(repo, rec.base)
            if parent is None or self._decided(repo, parent.commit):
                break
            out.append(parent.commit)
            rec = parent
        return out

    # ------------------------------------------------------------------ reports

    def _put_report_tx(self, tx: Tx, repo: str, commit: str, report: dict[str, Any]) -> None:
        tx.execute("DELETE FROM commit_reports WHERE repo = ? AND commit_id = ?", (repo, commit))
        tx.execute("INSERT INTO commit_reports (repo, commit_id, report, created_at) "
                   "VALUES (?, ?, ?, ?)", (repo, commit, json.dumps(report), time.time()))

    def put_report(self, repo: str, commit: str, report: dict[str, Any]) -> None:
        with self.db.transaction(lock=False) as tx:
            self._put_report_tx(tx, repo, commit, report)

    def report(self, repo: str, commit: str) -> dict[str, Any] | None:
        rows = self.db.read("SELECT report FROM commit_reports WHERE repo = ? AND "
                            "commit_id = ?", (repo, commit))
        if not rows:
            return None
        doc = json.loads(str(rows[0][0]))
        return doc if isinstance(doc, dict) else None

    # ------------------------------------------------------------------ votes

    def add_vote(self, repo: str, commit: str, decision: str, actor: str, identity: str,
                 note: str, audit: bool = True) -> None:
        """Record a reviewer's decision (``audit=False`` when the store's own approval
        event, written right after, already audits it)."""
        with self.db.transaction(lock=False) as tx:
            tx.execute("INSERT INTO review_votes (repo, commit_id, decision, actor, identity, "
                       "note, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (repo, commit, decision, actor, identity, note, time.time()))
            if audit:
                tx.execute("INSERT INTO audit (at, actor, client, method, action, repo, "
                           "revision, commit_id, path, status, bytes, detail) VALUES "
                           "(?, ?, 'review', 'REVIEW', ?, ?, NULL, ?, NULL, 0, 0, ?)",
                           (time.time(), actor, f"review-{decision}", repo, commit,
                            f"{identity}: {note}" if note else identity))

    def votes(self, repo: str, commit: str) -> list[Vote]:
        return [Vote(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                     str(r[6]), float(r[7])) for r in self.db.read(
            "SELECT id, repo, commit_id, decision, actor, identity, note, at FROM review_votes "
            "WHERE repo = ? AND commit_id = ? ORDER BY id", (repo, commit))]

    # ------------------------------------------------------------------ refusals

    def record_refusal(self, repo: str, target_ref: str, actor: str, identity: str,
                       rules: Sequence[str], message: str, report: dict[str, Any]) -> None:
        with self.db.transaction(lock=False) as tx:
            tx.execute("INSERT INTO push_refusals (repo, target_ref, actor, identity, at, rules, "
                       "message, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (repo, target_ref, actor, identity, time.time(), " ".join(rules),
                        message, json.dumps(report)))

    def refusals(self, limit: int = 50, repo: str | None = None) -> list[Refusal]:
        sql = ("SELECT id, repo, target_ref, actor, identity, at, rules, message, report "
               "FROM push_refusals")
        params: list[object] = []
        if repo is not None:
            sql += " WHERE repo = ?"
            params.append(repo)
        sql += f" ORDER BY at DESC LIMIT {int(limit)}"
        out = []
        for r in self.db.read(sql, params):
            try:
                rep = json.loads(str(r[8]))
            except ValueError:
                rep = {}
            out.append(Refusal(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]),
                               float(r[5]), tuple(str(r[6]).split()), str(r[7]),
                               rep if isinstance(rep, dict) else {}))
        return out

    # ------------------------------------------------------------------ pull requests

    def open_pr(self, repo: str, title: str, description: str, author: str,
                base_ref: str) -> PullRequest:
        now = time.time()
        with self.db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM repos WHERE id = ?", (repo,)):
                raise RepoNotFound(f"no repository {repo} in the store")
            rows = tx.execute("SELECT MAX(num) FROM pull_requests WHERE repo = ?", (repo,))
            num = int(rows[0][0] or 0) + 1
            tx.execute("INSERT INTO pull_requests (repo, num, title, description, author, "
                       "base_ref, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
                       (repo, num, title, description, author, base_ref, now))
        return PullRequest(repo, num, title, description, author, base_ref, "open", now)

    def pr(self, repo: str, num: int) -> PullRequest | None:
        rows = self.db.read("SELECT repo, num, title, description, author, base_ref, status, "
                            "created_at FROM pull_requests WHERE repo = ? AND num = ?",
                            (repo, num))
        return PullRequest(str(rows[0][0]), int(rows[0][1]), str(rows[0][2]), str(rows[0][3]),
                           str(rows[0][4]), str(rows[0][5]), str(rows[0][6]),
                           float(rows[0][7])) if rows else None

    def prs(self, repo: str) -> list[PullRequest]:
        return [PullRequest(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                            str(r[6]), float(r[7])) for r in self.db.read(
            "SELECT repo, num, title, description, author, base_ref, status, created_at "
            "FROM pull_requests WHERE repo = ? ORDER BY num", (repo,))]

    # ------------------------------------------------------------------ refs

    def create_ref(self, repo: str, name: str, kind: str, commit: str, actor: str,
                   note: str = "") -> None:
        """A new branch or tag at an approved commit; a name already in use conflicts.

        Logged like every ref move (approvals table, mirrored into the signed log)."""
        check_repo_id(repo)
        check_ref_name(name)
        now = time.time()
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT approved FROM commits WHERE repo = ? AND id = ?",
                              (repo, commit))
            if not rows or not rows[0][0]:
                raise RevisionNotFound(f"no approved commit {commit} in {repo}")
            if tx.execute("SELECT 1 FROM refs WHERE repo = ? AND name = ?", (repo, name)):
                raise ConflictError(f"{name!r} already exists in {repo}")
            tx.execute("INSERT INTO refs (repo, name, kind, commit_id, updated_at) "
                       "VALUES (?, ?, ?, ?, ?)", (repo, name, kind, commit, now))
            _log_tx(tx, repo, commit, f"move-{kind}", name, None, actor, note or f"create {kind}")
            Store.bump_access_epoch(tx)
        self.store._mirror_to_log()

    def delete_ref(self, repo: str, name: str, kind: str, actor: str, note: str = "") -> str:
        """Remove a branch or tag; returns the commit it pointed at."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT kind, commit_id FROM refs WHERE repo = ? AND name = ?",
                              (repo, name))
            if not rows or rows[0][0] != kind:
                raise RevisionNotFound(f"no {kind} {name} in {repo}")
            default = tx.execute("SELECT default_branch FROM repos WHERE id = ?", (repo,))
            if kind == "branch" and default and default[0][0] == name:
                raise ConflictError(f"{name!r} is the default branch of {repo}")
            commit = str(rows[0][1])
            tx.execute("DELETE FROM refs WHERE repo = ? AND name = ?", (repo, name))
            _log_tx(tx, repo, commit, f"delete-{kind}", name, commit, actor,
                    note or f"delete {kind}")
            Store.bump_access_epoch(tx)
        self.store._mirror_to_log()
        return commit

    def request_tag(self, repo: str, commit: str, tag: str) -> Commit:
        """Ask for ``tag`` to be set when the pending ``commit`` is approved."""
        check_ref_name(tag)
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT requested_tags, approved FROM commits WHERE repo = ? AND "
                              "id = ?", (repo, commit))
            if not rows:
                raise RevisionNotFound(f"no commit {commit} in {repo}")
            if tx.execute("SELECT 1 FROM refs WHERE repo = ? AND name = ?", (repo, tag)):
                raise ConflictError(f"{tag!r} already exists in {repo}")
            tags = [t for t in str(rows[0][0] or "").split(",") if t]
            if tag not in tags:
                tags.append(tag)
            tx.execute("UPDATE commits SET requested_tags = ? WHERE repo = ? AND id = ?",
                       (",".join(tags), repo, commit))
        return self.store.commit(repo, commit)

    def delete_repo(self, repo: str, actor: str | None = None) -> None:
        """Remove a repository's commits, files and refs. Approval history and the audit log
        are kept (the signed log must still verify); blobs stay until garbage collection."""
        who = actor or default_actor()
        with self.db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM repos WHERE id = ?", (repo,)):
                raise RepoNotFound(f"no repository {repo} in the store")
            head = tx.execute("SELECT id FROM commits WHERE repo = ? ORDER BY created_at DESC "
                              "LIMIT 1", (repo,))
            for table, col in (("files", "repo"), ("refs", "repo"), ("commits", "repo"),
                               ("push_commits", "repo"), ("commit_reports", "repo"),
                               ("pull_requests", "repo"), ("repos", "id")):
                tx.execute(f"DELETE FROM {table} WHERE {col} = ?", (repo,))
            _log_tx(tx, repo, str(head[0][0]) if head else "-", "delete-repo", None, None, who,
                    "repository deleted")
            Store.bump_access_epoch(tx)
        self.store._mirror_to_log()

    # ------------------------------------------------------------------ git sha1 cache

    def git_sha1(self, sha256: str) -> str | None:
        rows = self.db.read("SELECT git_sha1 FROM blob_git_sha1 WHERE sha256 = ?", (sha256,))
        return str(rows[0][0]) if rows else None

    def put_git_sha1(self, sha256: str, git_sha1: str) -> None:
        with self.db.transaction(lock=False) as tx:
            tx.execute("INSERT INTO blob_git_sha1 (sha256, git_sha1) VALUES (?, ?) "
                       "ON CONFLICT (sha256) DO NOTHING", (sha256, git_sha1))

    # ------------------------------------------------------------------ console sessions

    def create_session(self, token_id: str, lifetime: float) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        s = Session(token_id, secrets.token_urlsafe(32), now, now + lifetime)
        with self.db.transaction(lock=False) as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now,))
            tx.execute("INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, "
                       "expires_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)",
                       (_hash_session(sid), token_id, s.csrf, now, s.expires_at, now))
        return sid, s

    def session(self, sid: str, idle: float) -> Session | None:
        now = time.time()
        rows = self.db.read("SELECT token_id, csrf, created_at, expires_at, last_seen FROM "
                            "console_sessions WHERE id_hash = ?", (_hash_session(sid),))
        if not rows or float(rows[0][3]) < now or float(rows[0][4]) + idle < now:
            return None
        if now - float(rows[0][4]) > 60:  # keep the idle clock without a write per request
            with self.db.transaction(lock=False) as tx:
                tx.execute("UPDATE console_sessions SET last_seen = ? WHERE id_hash = ?",
                           (now, _hash_session(sid)))
        return Session(str(rows[0][0]), str(rows[0][1]), float(rows[0][2]), float(rows[0][3]))

    def end_session(self, sid: str) -> None:
        with self.db.transaction(lock=False) as tx:
            tx.execute("DELETE FROM console_sessions WHERE id_hash = ?", (_hash_session(sid),))


def _log_tx(tx: Tx, repo: str, commit: str, action: str, ref: str | None,
            previous: str | None, actor: str, note: str) -> None:
    """The store's approvals + audit rows, exactly as ``Store._log_tx`` writes them."""
    now = time.time()
    tx.execute("INSERT INTO approvals (repo, commit_id, action, ref, previous, actor, at, "
               "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (repo, commit, action, ref, previous, actor, now, note))
    detail = f"{ref}: {previous or '-'} -> {commit}" if ref else note
    tx.execute("INSERT INTO audit (at, actor, client, method, action, repo, revision, "
               "commit_id, path, status, bytes, detail) VALUES "
               "(?, ?, 'api', 'API', ?, ?, ?, ?, NULL, 0, 0, ?)",
               (now, actor, action, repo, ref, commit, detail))
