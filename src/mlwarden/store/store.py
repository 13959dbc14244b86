"""The model store: blobs in a BlobBackend plus commits, refs, approvals, tokens and audit
in a database.

Visibility is decided here once for every consumer: a commit is served only after an
explicit, logged approval, and approval is the only thing that moves a branch or a tag.
Promotion is atomic: blobs land first (content-addressed, so a half-finished import
leaves only unreferenced blobs), then one DB transaction makes the commit exist. Blobs
being written are leased in the database until their commit exists, so ``store gc``
never removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from mlwarden.store import tokens as tok
from mlwarden.store.blobs import BlobBackend, BlobReader, Digest, open_blobs, same_location
from mlwarden.store.blobs.base import Readable
from mlwarden.store.coordination import Coordinator, coordinator_for
from mlwarden.store.db import Database, SqliteDatabase, Tx, init_schema, open_database
from mlwarden.store.errors import (
    ConflictError,
    InvalidName,
    RepoNotFound,
    RevisionNotFound,
    StoreError,
)
from mlwarden.store.hashing import FileDigest, GitTap
from mlwarden.store.model import ApprovalEvent, AuditEntry, Commit, FileEntry, Ref, RepoInfo
from mlwarden.store.names import check_file_path, check_ref_name, check_repo_id, is_commit_id
from mlwarden.util.actor import default_actor
from mlwarden.util.fs import file_lock

# Client-side metadata that is never part of a model repository.
SKIPPED_DIRS = {(".git",), (".cache", "huggingface")}
_COMMIT_COLS = ("repo, id, parent, message, author, created_at, approved, branch, "
                "requested_tags, scan_verdict")
LEASE_SECONDS = 24 * 3600  # a crashed writer's leases lapse after this
STAGE_PREFIX = "stage-"
MARKER = "mlwarden-store"  # written at the root of every store directory


@dataclass(frozen=True)
class StagedFile:
    """A file already inside the store's tmp area with its digest known."""

    path: str  # repository path
    local: Path
    digest: FileDigest | None = None


def list_tree(directory: Path) -> list[tuple[str, Path]]:
    """Regular files under ``directory`` as (repository path, local path), sorted.

    Symbolic links and special files are refused: a Hub repository has neither, and
    following one could import bytes from outside the directory.
    """
    if not directory.is_dir():
        raise StoreError(f"{directory}: not a directory")
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        rel_dir = Path(dirpath).relative_to(directory).parts
        for d in list(dirnames):
            parts = (*rel_dir, d)
            if parts in SKIPPED_DIRS or parts[:2] in SKIPPED_DIRS:
                dirnames.remove(d)
            elif (Path(dirpath) / d).is_symlink():
                raise StoreError(f"{Path(dirpath) / d}: symbolic links are not imported")
        for name in filenames:
            local = Path(dirpath) / name
            st = os.lstat(local)
            if stat.S_ISLNK(st.st_mode):
                raise StoreError(f"{local}: symbolic links are not imported")
            if not stat.S_ISREG(st.st_mode):
                raise StoreError(f"{local}: not a regular file")
            rel = "/".join((*rel_dir, name))
            try:
                check_file_path(rel)
            except InvalidName as exc:
                raise StoreError(f"{local}: {exc}") from exc
            out.append((rel, local))
    out.sort()
    if not out:
        raise StoreError(f"{directory}: no files to import")
    return out


def tree_hash(files: Iterable[FileEntry]) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\0{f.size}\0{int(f.lfs)}\n".encode())
    return h.hexdigest()


def commit_hash(tree: str, parent: str | None, author: str, created_at: float,
                message: str) -> str:
    """Git-like: the id covers content, parent, author, time and message."""
    body = f"tree {tree}\n"
    if parent:
        body += f"parent {parent}\n"
    body += f"author {author} {int(created_at * 1000)}\n\n{message}\n"
    return hashlib.sha1(body.encode(), usedforsecurity=False).hexdigest()


class Ingest:
    """A write session: puts blobs and leases each one until the session ends.

    A lease (a ``blob_leases`` row) is taken after the bytes are verified and before they
    become visible under their name, so ``store gc`` never removes a blob between its
    upload and the commit that references it. ``Store.commit_files`` inside the session
    makes the blobs referenced; leaving the session drops its leases (a crash leaves them
    to expire after LEASE_SECONDS).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.holder = uuid.uuid4().hex
        self._held: set[str] = set()

    def hold(self, shas: Iterable[str]) -> None:
        """Lease blobs (present or about to be written) for this session."""
        new = sorted(set(shas) - self._held)
        if not new:
            return
        until = time.time() + LEASE_SECONDS
        with self.store.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO blob_leases (sha256, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (sha256, holder) DO UPDATE SET expires_at = excluded.expires_at",
                [(sha, self.holder, until) for sha in new])
        self._held.update(new)

    def _on_verified(self, d: Digest) -> None:
        self.hold([d.sha256])

    def put_file(self, local: Path, rel: str, *, move: bool = False,
                 known: FileDigest | None = None) -> FileDigest:
        """Store one file of repository path ``rel``. ``move=True`` consumes a file the
        store owns (staging, quarantine); ``known`` is the digest taken when it was
        written there."""
        blobs = self.store.blobs
        try:
            if known is not None:
                got = blobs.put_file(local, move=move, known=Digest(known.sha256, known.size),
                                     on_verified=self._on_verified)
                return FileDigest(got.sha256, got.size, known.lfs, known.git_oid)
            with open(local, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                tap = GitTap(rel, size)
                got = blobs.put_stream(fh, expected_size=size, tap=tap,
                                       on_verified=self._on_verified)
            if move:
                os.unlink(local)
        except OSError as exc:
            raise StoreError(f"{local}: {exc.strerror or exc}") from exc
        return tap.digest(got.sha256, got.size)

    def put_stream(self, reader: Readable, rel: str, *, size: int | None = None,
                   expected_sha256: str | None = None) -> FileDigest:
        """Store a stream (an upload) as repository path ``rel``, hashed as it is written;
        with ``size``/``expected_sha256`` a stream that does not match is refused."""
        tap = GitTap(rel, size)
        got = self.store.blobs.put_stream(reader, expected_sha256=expected_sha256,
                                          expected_size=size, tap=tap,
                                          on_verified=self._on_verified)
        return tap.digest(got.sha256, got.size)

    def release(self) -> None:
        if self._held:
            with self.store.db.transaction(lock=False) as tx:
                tx.execute("DELETE FROM blob_leases WHERE holder = ?", (self.holder,))
            self._held.clear()

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.release()
        except StoreError:
            if et is None:
                raise  # leases lapse on their own; never mask the original error


def is_store(path: Path) -> bool:
    """A directory created by Store.open (or an older store with blobs/ or meta.db)."""
    return (path / MARKER).is_file() or (path / "blobs").is_dir() or \
        (path / "meta.db").is_file()


class Store:
    def __init__(self, root: Path, db: Database, blobs: BlobBackend,
                 coordination: Coordinator | None = None) -> None:
        self.root = root
        self.db = db
        self.blobs = blobs
        self.tmp = root / "tmp"  # local scratch: staging and quarantine, never served
        self.coordination = coordination or coordinator_for(db, root)

    @classmethod
    def open(cls, root: str | os.PathLike[str], db_url: str | None = None,
             create: bool = True, blobs_url: str | None = None,
             s3_endpoint: str | None = None) -> Store:
        """Open (or create) the store at ``root``: metadata in ``db_url`` (SQLite
        ``root/meta.db`` by default, or PostgreSQL), blobs where the database records
        them, else in ``blobs_url`` (env MLWARDEN_BLOBS), else ``root/blobs``."""
        path = Path(root)
        url = db_url or os.environ.get("MLWARDEN_DB")
        wanted = blobs_url or os.environ.get("MLWARDEN_BLOBS") or None
        db = open_database(url, path)
        if not create and not is_store(path) and (
                isinstance(db, SqliteDatabase) or not _has_schema(db)):
            db.close()
            raise StoreError(f"{path}: not an mlwarden store (run `mlwarden import` first)")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / MARKER).touch(exist_ok=True)
            if isinstance(db, SqliteDatabase):
                with file_lock(path / ".lock"):
                    init_schema(db)
            else:  # serialised on the server (advisory lock in the transaction)
                init_schema(db)
            blobs = open_blobs(_blob_location(db, wanted, path), path / "blobs",
                               s3_endpoint=s3_endpoint
                               or os.environ.get("MLWARDEN_S3_ENDPOINT") or None)
            ensure = getattr(blobs, "ensure", None)
            if ensure is not None:
                ensure()
        except OSError as exc:
            db.close()
            raise StoreError(f"cannot open store {path}: {exc.strerror or exc}") from exc
        except BaseException:
            db.close()
            raise
        return cls(path, db, blobs)

    def close(self) -> None:
        self.db.close()
        self.blobs.close()

    def lock(self, name: str = "store", timeout: float | None = None
             ) -> AbstractContextManager[None]:
        """A named writer lock across processes and hosts (see store.coordination)."""
        return self.coordination.lock(name, timeout)

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def staging(self, prefix: str = STAGE_PREFIX) -> Iterator[Path]:
        """A private local directory (on the blob filesystem when blobs are local files,
        so promotion is a rename). Removed when the block ends; one left by a killed
        process is removed by ``store gc``."""
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))
            fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot create a staging directory in {self.tmp}: "
                             f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(f"{path}.lock")
            os.close(fd)

    def ingest(self) -> Ingest:
        """A write session (``with store.ingest() as ing: ing.put_file(...)``)."""
        return Ingest(self)

    def open_blob(self, sha256: str, start: int = 0, length: int | None = None) -> BlobReader:
        return self.blobs.open_range(sha256, start, length)

    def commit_directory(
        self, directory: Path, repo: str, *, branch: str = "main", message: str = "",
        author: str | None = None, tags: Sequence[str] = (), approve: bool = False,
        move: bool = False, commit_id: str | None = None, created_at: float | None = None,
        scan_verdict: str | None = None, scan_summary: dict[str, object] | None = None,
    ) -> Commit:
        """Promote every file of ``directory`` into the store as one commit of ``repo``.

        ``move=True`` is for a directory the caller owns inside ``staging()``: files are
        renamed in, not copied. ``commit_id`` lets a pull keep the upstream commit id.
        The commit is invisible until approved (``approve=True`` approves it at once, as
        an explicit, logged decision of ``author``).
        """
        check_repo_id(repo)
        check_ref_name(branch)
        for t in tags:
            check_ref_name(t)
        if commit_id is not None and not is_commit_id(commit_id):
            raise InvalidName(f"commit id {commit_id!r} is not 40 lower-case hex digits")
        actor = author or default_actor()
        entries: list[FileEntry] = []
        with self.ingest() as session:
            for rel, local in list_tree(directory):
                d = session.put_file(local, rel, move=move)
                entries.append(FileEntry(rel, d.sha256, d.size, d.lfs, d.git_oid))
            return self.commit_files(entries, repo, branch=branch, message=message,
                                     author=actor, tags=tags, approve=approve,
                                     commit_id=commit_id, created_at=created_at,
                                     scan_verdict=scan_verdict, scan_summary=scan_summary,
                                     session=session)

    def commit_files(
        self, entries: Sequence[FileEntry], repo: str, *, branch: str, message: str,
        author: str, tags: Sequence[str] = (), approve: bool = False,
        commit_id: str | None = None, created_at: float | None = None,
        scan_verdict: str | None = None, scan_summary: dict[str, object] | None = None,
        session: Ingest | None = None,
    ) -> Commit:
        """Record a commit whose blobs are already stored (one transaction). The blobs
        are leased first (in ``session`` if given), then checked, so a concurrent gc
        cannot remove one between the check and the commit."""
        if session is None:
            with self.ingest() as own:
                return self.commit_files(
                    entries, repo, branch=branch, message=message, author=author, tags=tags,
                    approve=approve, commit_id=commit_id, created_at=created_at,
                    scan_verdict=scan_verdict, scan_summary=scan_summary, session=own)
        session.hold(e.sha256 for e in entries)
        present: set[str] = set()
        for e in entries:
            if e.sha256 not in present:
                if not self.blobs.exists(e.sha256):
                    raise StoreError(f"{e.path}: blob {e.sha256} is not in the store")
                present.add(e.sha256)
        now = time.time() if created_at is None else created_at
        with self.db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM repos WHERE id = ?", (repo,)):
                tx.execute("INSERT INTO repos (id, created_at, default_branch, gated) "
                           "VALUES (?, ?, ?, 0)", (repo, now, branch))
            parent = self._ref_tx(tx, repo, branch, want="branch")
            tree = tree_hash(entries)
            cid = commit_id or commit_hash(tree, parent, author, now, message)
            existing = tx.execute("SELECT 1 FROM commits WHERE repo = ? AND id = ?", (repo, cid))
            if existing:
                old = [FileEntry(r[0], r[1], r[2], bool(r[3]), r[4]) for r in tx.execute(
                    "SELECT path, sha256, size, lfs, git_oid FROM files "
                    "WHERE repo = ? AND commit_id = ?", (repo, cid))]
                if tree_hash(old) != tree:
                    raise ConflictError(f"commit {cid} already exists in {repo} "
                                        "with other content")
            else:
                tx.execute(
                    "INSERT INTO commits (repo, id, parent, message, author, created_at, "
                    "approved, branch, requested_tags, scan_verdict, scan_summary) "
                    "VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                    (repo, cid, parent, message, author, now, branch, ",".join(tags),
                     scan_verdict, json.dumps(scan_summary) if scan_summary else None))
                tx.executemany(
                    "INSERT INTO files (repo, commit_id, path, sha256, size, lfs, git_oid) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(repo, cid, e.path, e.sha256, e.size, int(e.lfs), e.git_oid)
                     for e in entries])
            if approve:
                self._approve_tx(tx, repo, cid, author, tags, message or "approved at import")
        return self.commit(repo, cid)

    # ------------------------------------------------------------------ approval

    def approve(self, repo: str, rev: str, *, actor: str | None = None,
                tags: Sequence[str] = (), note: str = "") -> Commit:
        """Approve a commit: it becomes visible, its branch and tags move to it. Logged."""
        check_repo_id(repo)
        for t in tags:
            check_ref_name(t)
        with self.db.transaction() as tx:
            cid = self._find_commit_tx(tx, repo, rev)
            self._approve_tx(tx, repo, cid, actor or default_actor(), tags, note)
        self._mirror_to_log()
        return self.commit(repo, cid)

    def revoke(self, repo: str, rev: str, *, actor: str | None = None, note: str = "") -> Commit:
        """Withdraw approval: the commit and every ref pointing at it become invisible."""
        check_repo_id(repo)
        who = actor or default_actor()
        with self.db.transaction() as tx:
            cid = self._find_commit_tx(tx, repo, rev)
            tx.execute("UPDATE commits SET approved = 0 WHERE repo = ? AND id = ?", (repo, cid))
            self.bump_access_epoch(tx)
            self._log_tx(tx, repo, cid, "revoke", None, None, who, note)
        self._mirror_to_log()
        return self.commit(repo, cid)

    def _mirror_to_log(self) -> None:
        """Append the approval events just committed to the signed, hash-chained approval
        log (mlwarden.approvals). The database keeps them if this fails, and
        ``mlwarden log sync`` mirrors them later; the failure is still reported."""
        if os.environ.get("MLWARDEN_APPROVAL_LOG", "1") == "0":
            return
        from mlwarden.approvals import record_store_events
        from mlwarden.approvals.errors import ApprovalLogError

        try:
            record_store_events(self)
        except (ApprovalLogError, OSError) as exc:
            raise StoreError(f"recorded in the store, but the approval log could not be "
                             f"appended ({exc}); run `mlwarden log sync` once fixed") from exc

    @staticmethod
    def bump_access_epoch(tx: Tx) -> None:
        """Call in any transaction that changes who may see what (approval, revocation,
        gating, tokens): every serving replica drops its access caches when it sees the
        new epoch (within the bound stated in docs/registry.md)."""
        tx.execute("INSERT INTO meta (key, value) VALUES ('access_epoch', ?) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (uuid.uuid4().hex,))

    def access_epoch(self) -> str:
        rows = self.db.read("SELECT value FROM meta WHERE key = 'access_epoch'")
        return str(rows[0][0]) if rows else ""

    def _approve_tx(self, tx: Tx, repo: str, cid: str, actor: str, tags: Sequence[str],
                    note: str) -> None:
        self.bump_access_epoch(tx)
        row = tx.execute("SELECT branch, requested_tags FROM commits WHERE repo = ? AND id = ?",
                         (repo, cid))
        branch, requested = row[0][0], [t for t in row[0][1].split(",") if t]
        tx.execute("UPDATE commits SET approved = 1 WHERE repo = ? AND id = ?", (repo, cid))
        self._log_tx(tx, repo, cid, "approve", None, None, actor, note)
        self._move_ref_tx(tx, repo, branch, "branch", cid, actor, note)
        for t in dict.fromkeys([*requested, *tags]):
            self._move_ref_tx(tx, repo, t, "tag", cid, actor, note)

    def _move_ref_tx(self, tx: Tx, repo: str, name: str, kind: str, cid: str, actor: str,
                     note: str) -> None:
        rows = tx.execute("SELECT kind, commit_id FROM refs WHERE repo = ? AND name = ?",
                          (repo, name))
        if rows and rows[0][0] != kind:
            raise ConflictError(f"{name!r} is already a {rows[0][0]} of {repo}")
        previous = rows[0][1] if rows else None
        if previous == cid:
            return
        now = time.time()
        if rows:
            tx.execute("UPDATE refs SET commit_id = ?, updated_at = ? WHERE repo = ? AND name = ?",
                       (cid, now, repo, name))
        else:
            tx.execute("INSERT INTO refs (repo, name, kind, commit_id, updated_at) "
                       "VALUES (?, ?, ?, ?, ?)", (repo, name, kind, cid, now))
        self._log_tx(tx, repo, cid, f"move-{kind}", name, previous, actor, note)

    def _log_tx(self, tx: Tx, repo: str, cid: str, action: str, ref: str | None,
                previous: str | None, actor: str, note: str) -> None:
        now = time.time()
        tx.execute("INSERT INTO approvals (repo, commit_id, action, ref, previous, actor, at, "
                   "note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (repo, cid, action, ref, previous, actor, now, note))
        detail = f"{ref}: {previous or '-'} -> {cid}" if ref else note
        tx.execute("INSERT INTO audit (at, actor, client, method, action, repo, revision, "
                   "commit_id, path, status, bytes, detail) VALUES "
                   "(?, ?, 'cli', 'CLI', ?, ?, ?, ?, NULL, 0, 0, ?)",
                   (now, actor, action, repo, ref, cid, detail))

    def _ref_tx(self, tx: Tx, repo: str, name: str, want: str) -> str | None:
        rows = tx.execute("SELECT kind, commit_id FROM refs WHERE repo = ? AND name = ?",
                          (repo, name))
        if not rows:
            return None
        if rows[0][0] != want:
            raise ConflictError(f"{name!r} is a {rows[0][0]} of {repo}, not a {want}")
        return str(rows[0][1])

    def _find_commit_tx(self, tx: Tx, repo: str, rev: str) -> str:
        """A ref name, a full commit id, or a unique prefix of at least 7 hex digits."""
        if not tx.execute("SELECT 1 FROM repos WHERE id = ?", (repo,)):
            raise RepoNotFound(f"no repository {repo} in the store")
        rows = tx.execute("SELECT commit_id FROM refs WHERE repo = ? AND name = ?", (repo, rev))
        if rows:
            return str(rows[0][0])
        if len(rev) >= 7 and all(c in "0123456789abcdef" for c in rev):
            rows = tx.execute("SELECT id FROM commits WHERE repo = ? AND id LIKE ?",
                              (repo, rev + "%"))
            if len(rows) == 1:
                return str(rows[0][0])
            if len(rows) > 1:
                raise RevisionNotFound(f"{rev} is ambiguous in {repo}")
        pending = tx.execute("SELECT id FROM commits WHERE repo = ? AND approved = 0 "
                             "ORDER BY created_at DESC LIMIT 5", (repo,))
        hint = (" (commits awaiting approval: " + ", ".join(str(r[0])[:12] for r in pending)
                + ")") if pending else ""
        raise RevisionNotFound(f"no revision {rev} in {repo}{hint}")

    # ------------------------------------------------------------------ reading

    def repo(self, repo: str) -> RepoInfo | None:
        rows = self.db.read("SELECT id, created_at, default_branch, gated FROM repos "
                            "WHERE id = ?", (repo,))
        return RepoInfo(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3])) if rows else None

    def visible_repo(self, repo: str) -> RepoInfo | None:
        """The repository, if at least one of its commits is approved."""
        info = self.repo(repo)
        if info is None or not self.db.read(
                "SELECT 1 FROM commits WHERE repo = ? AND approved = 1 LIMIT 1", (repo,)):
            return None
        return info

    def repos(self) -> list[RepoInfo]:
        return [RepoInfo(r[0], r[1], r[2], bool(r[3])) for r in self.db.read(
            "SELECT id, created_at, default_branch, gated FROM repos ORDER BY id")]

    def set_gated(self, repo: str, gated: bool, actor: str | None = None) -> None:
        with self.db.transaction() as tx:
            if not tx.execute("SELECT 1 FROM repos WHERE id = ?", (repo,)):
                raise RepoNotFound(f"no repository {repo} in the store")
            tx.execute("UPDATE repos SET gated = ? WHERE id = ?", (int(gated), repo))
            self.bump_access_epoch(tx)
            head = tx.execute("SELECT id FROM commits WHERE repo = ? ORDER BY created_at DESC "
                              "LIMIT 1", (repo,))
            self._log_tx(tx, repo, head[0][0] if head else "-", "gate" if gated else "ungate",
                         None, None, actor or default_actor(), "")
        self._mirror_to_log()

    def commit(self, repo: str, cid: str) -> Commit:
        rows = self.db.read(f"SELECT {_COMMIT_COLS} FROM commits WHERE repo = ? AND id = ?",
                            (repo, cid))
        if not rows:
            raise RevisionNotFound(f"no commit {cid} in {repo}")
        return _commit(rows[0])

    def commits(self, repo: str) -> list[Commit]:
        return [_commit(r) for r in self.db.read(
            f"SELECT {_COMMIT_COLS} FROM commits WHERE repo = ? ORDER BY created_at", (repo,))]

    def resolve(self, repo: str, revision: str, approved_only: bool = True) -> Commit:
        """Branch, then tag, then full commit id. Unapproved targets do not exist."""
        rows = self.db.read("SELECT commit_id FROM refs WHERE repo = ? AND name = ?",
                            (repo, revision))
        if rows:
            cid = str(rows[0][0])
        elif is_commit_id(revision):
            cid = revision
        else:
            raise RevisionNotFound(f"revision {revision} not found in {repo}")
        try:
            c = self.commit(repo, cid)
        except RevisionNotFound:
            raise RevisionNotFound(f"revision {revision} not found in {repo}") from None
        if approved_only and not c.approved:
            raise RevisionNotFound(f"revision {revision} not found in {repo}")
        return c

    def files(self, repo: str, cid: str) -> list[FileEntry]:
        return [FileEntry(r[0], r[1], r[2], bool(r[3]), r[4]) for r in self.db.read(
            "SELECT path, sha256, size, lfs, git_oid FROM files WHERE repo = ? AND commit_id = ? "
            "ORDER BY path", (repo, cid))]

    def file(self, repo: str, cid: str, path: str) -> FileEntry | None:
        rows = self.db.read("SELECT path, sha256, size, lfs, git_oid FROM files "
                            "WHERE repo = ? AND commit_id = ? AND path = ?", (repo, cid, path))
        return FileEntry(rows[0][0], rows[0][1], rows[0][2], bool(rows[0][3]), rows[0][4]) \
            if rows else None

    def refs(self, repo: str, approved_only: bool = True) -> list[Ref]:
        sql = ("SELECT r.name, r.kind, r.commit_id FROM refs r JOIN commits c "
               "ON c.repo = r.repo AND c.id = r.commit_id WHERE r.repo = ?")
        if approved_only:
            sql += " AND c.approved = 1"
        return [Ref(r[0], r[1], r[2]) for r in self.db.read(sql + " ORDER BY r.name", (repo,))]

    def approvals(self, repo: str | None = None) -> list[ApprovalEvent]:
        sql = "SELECT id, repo, commit_id, action, ref, previous, actor, at, note FROM approvals"
        params: tuple[str, ...] = ()
        if repo:
            sql += " WHERE repo = ?"
            params = (repo,)
        return [ApprovalEvent(*r) for r in self.db.read(sql + " ORDER BY id", params)]

    # ------------------------------------------------------------------ tokens

    def create_token(self, name: str, scopes: Sequence[str],
                     expires_at: float | None = None) -> tuple[tok.TokenInfo, str]:
        parsed = tuple(tok.Scope.parse(s) for s in scopes)
        if not parsed:
            raise InvalidName("a token needs at least one --scope")
        if not name or len(name) > 100 or any(ord(c) < 0x20 for c in name):
            raise InvalidName("token name must be 1-100 printable characters")
        tid, secret, text = tok.new_token()
        salt = os.urandom(16).hex()
        now = time.time()
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO tokens (id, name, salt, hash, scopes, created_at, "
                       "expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                       (tid, name, salt, tok.hash_secret(salt, secret),
                        " ".join(map(str, parsed)), now, expires_at))
        return tok.TokenInfo(tid, name, parsed, now, expires_at, None), text

    def tokens(self) -> list[tok.TokenInfo]:
        return [_token(r) for r in self.db.read(
            "SELECT id, name, scopes, created_at, expires_at, revoked_at FROM tokens "
            "ORDER BY created_at")]

    def revoke_token(self, id_or_name: str) -> int:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id FROM tokens WHERE (id = ? OR name = ?) "
                              "AND revoked_at IS NULL", (id_or_name, id_or_name))
            for (tid,) in rows:
                tx.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (time.time(), tid))
            if rows:
                self.bump_access_epoch(tx)
        return len(rows)

    def verify_token(self, text: str, now: float | None = None) -> tok.TokenInfo | None:
        parts = tok.split_token(text)
        if parts is None:
            return None
        rows = self.db.read("SELECT id, name, scopes, created_at, expires_at, revoked_at, "
                            "salt, hash FROM tokens WHERE id = ?", (parts[0],))
        if not rows or not tok.check_secret(rows[0][6], rows[0][7], parts[1]):
            return None
        info = _token(rows[0][:6])
        return info if info.active(time.time() if now is None else now) else None

    # ------------------------------------------------------------------ audit

    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        with self.db.transaction(lock=False) as tx:  # appends conflict with nothing
            tx.executemany(
                "INSERT INTO audit (at, actor, client, method, action, repo, revision, "
                "commit_id, path, status, bytes, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                [(e.at, e.actor, e.client, e.method, e.action, e.repo, e.revision, e.commit,
                  e.path, e.status, e.bytes, e.detail) for e in entries])

    def audit(self, repo: str | None = None, since: float | None = None,
              action: str | None = None, limit: int | None = None) -> list[AuditEntry]:
        sql = ("SELECT at, actor, client, method, action, repo, revision, commit_id, path, "
               "status, bytes, detail FROM audit WHERE 1 = 1")
        params: list[object] = []
        if repo:
            sql += " AND repo = ?"
            params.append(repo)
        if since is not None:
            sql += " AND at >= ?"
            params.append(since)
        if action:
            sql += " AND action = ?"
            params.append(action)
        sql += " ORDER BY id"
        if limit:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) t ORDER BY at"
        return [AuditEntry(*r) for r in self.db.read(sql, params)]

    def iter_referenced_blobs(self) -> Iterator[str]:
        for (sha,) in self.db.read("SELECT DISTINCT sha256 FROM files"):
            yield str(sha)


def _commit(r: tuple[object, ...]) -> Commit:
    tags = str(r[8] or "")
    return Commit(str(r[0]), str(r[1]), r[2] if r[2] is None else str(r[2]), str(r[3]),
                  str(r[4]), float(r[5]),  # type: ignore[arg-type]
                  bool(r[6]), str(r[7]), tuple(t for t in tags.split(",") if t),
                  None if r[9] is None else str(r[9]))


def _token(r: tuple[object, ...]) -> tok.TokenInfo:
    return tok.TokenInfo(str(r[0]), str(r[1]),
                         tuple(tok.Scope.parse(s) for s in str(r[2]).split()),
                         float(r[3]),  # type: ignore[arg-type]
                         None if r[4] is None else float(r[4]),  # type: ignore[arg-type]
                         None if r[5] is None else float(r[5]))  # type: ignore[arg-type]


def _has_schema(db: Database) -> bool:
    try:
        return bool(db.read("SELECT value FROM meta WHERE key = 'schema_version'"))
    except StoreError:
        return False


def _blob_location(db: Database, wanted: str | None, root: Path) -> str | None:
    """Where this store's blobs are: the database records any location other than the
    default ``root/blobs``, so every host and replica finds the same bucket."""
    rows = db.read("SELECT value FROM meta WHERE key = 'blobs_url'")
    recorded = str(rows[0][0]) if rows else None
    default = (root / "blobs").absolute().as_uri()
    if wanted is None:
        return recorded
    wanted_url = wanted if "://" in wanted else Path(wanted).absolute().as_uri()
    current = recorded or default
    if same_location(wanted_url, current):
        return wanted if recorded else None
    if recorded is None and not db.read("SELECT 1 FROM files LIMIT 1"):
        with db.transaction() as tx:  # a new store: remember where its blobs go
            tx.execute("INSERT INTO meta (key, value) VALUES ('blobs_url', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (wanted,))
        return wanted
    raise StoreError(f"this store's blobs are at {current.split('?', 1)[0]}, not "
                     f"{wanted.split('?', 1)[0]}; `mlwarden store migrate --to URL` moves them")
