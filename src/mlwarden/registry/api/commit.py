"""``POST /api/models/{repo}/commit/{rev}``: the NDJSON commit, through the airlock.

1. The body is streamed: inline files are base64-decoded into quarantine and hashed as they
   arrive; ``lfsFile`` entries must name an object already verified in quarantine (or
   content this repository already holds).
2. Under the repository's write lock, the operations are applied to the push head of the
   branch (the newest pending push, else the approved head) and the full tree is staged.
3. The staged tree is scanned and checked against the policy (``gate``). A refused commit
   never exists: its quarantined bytes are dropped, the refusal is recorded, and the
   client's error names the rules. Otherwise the bytes are promoted into the blob store
   and the commit is recorded **pending**: readers see it only after approval.

``?create_pr=1`` opens pull request N and commits to ``refs/pr/N``; committing to
``refs/pr/N`` (what upload_folder does after creating the PR) adds to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

from mlwarden.registry.api.context import BodyReader, Principal, WriteCall, WriteContext
from mlwarden.registry.api.gate import StagedEntry, check_tree
from mlwarden.registry.api.ndjson import Base64Sink, CommitBodyError, read_commit_body
from mlwarden.registry.api.preupload import target_ref
from mlwarden.registry.api.quarantine import Quarantined, UploadError
from mlwarden.registry.api.repos import repo_lock
from mlwarden.registry.responses import HubError
from mlwarden.store import Store
from mlwarden.store.errors import InvalidName
from mlwarden.store.hashing import FileDigest, git_blob_sha1, is_lfs, lfs_pointer
from mlwarden.store.model import FileEntry
from mlwarden.store.names import check_file_path, is_commit_id
from mlwarden.store.push import PushRecord, pr_ref
from mlwarden.store.store import commit_hash, tree_hash

MAX_MESSAGE = 64 * 1024


@dataclass(frozen=True)
class StoredBlob:
    """An ``lfsFile`` naming content this repository already has in the blob store."""

    sha256: str
    size: int
    head: bytes


@dataclass(frozen=True)
class NewFile:
    content: Quarantined | StoredBlob
    shared: bool  # an LFS object (may back several paths) vs inline content

    def digest(self, store: Store, rel: str) -> FileDigest:
        c = self.content
        if isinstance(c, Quarantined):
            return c.digest(rel)
        lfs = is_lfs(rel, c.size, c.head)
        if lfs:
            return FileDigest(c.sha256, c.size, True, git_blob_sha1(lfs_pointer(c.sha256, c.size)))
        h = hashlib.sha1(b"blob %d\x00" % c.size, usedforsecurity=False)
        with store.open_blob(c.sha256) as fh:  # not LFS: at most 10 MiB
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return FileDigest(c.sha256, c.size, False, h.hexdigest())


@dataclass
class Operations:
    summary: str = ""
    description: str = ""
    parent: str | None = None
    adds: dict[str, NewFile] | None = None
    deletes: list[tuple[str, bool]] | None = None  # (path, is_folder), in order
    order: list[tuple[str, str]] | None = None  # ("add"|"delete", path) in request order


def _path(value: dict[str, Any]) -> str:
    p = value.get("path")
    if not isinstance(p, str):
        raise HubError(400, None, "operation without a path", audit="bad-request")
    try:
        return check_file_path(p)
    except InvalidName as exc:
        raise HubError(400, None, str(exc), audit="bad-request") from None


def _release(files: list[Quarantined]) -> None:
    for q in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(q.path)


def read_operations(ctx: WriteContext, repo: str, body: BodyReader,
                    owned: list[Quarantined]) -> Operations:
    """Parse the whole body; every inline file ends in quarantine and in ``owned``."""
    ops = Operations(adds={}, deletes=[], order=[])
    assert ops.adds is not None and ops.deletes is not None and ops.order is not None

    def new_sink() -> Base64Sink:
        w = ctx.quarantine.new_file()
        return Base64Sink(w.write, w.finish, w.abort)

    first = True
    count = 0
    try:
        for key, value in read_commit_body(body.read, new_sink):
            content = value.get("content")
            if isinstance(content, Quarantined):
                owned.append(content)
            count += 1
            if count > ctx.write.max_operations:
                raise HubError(413, None, f"more than {ctx.write.max_operations} operations "
                               "in one commit", audit="bad-request")
            if first:
                if key != "header":
                    raise HubError(400, None, "the first line must be the header",
                                   audit="bad-request")
                first = False
                summary, desc = value.get("summary"), value.get("description", "")
                parent = value.get("parentCommit")
                if not isinstance(summary, str) or not summary.strip() or \
                        not isinstance(desc, str) or len(summary) + len(desc) > MAX_MESSAGE:
                    raise HubError(400, None, "header needs a summary (commit message) of at "
                                   f"most {MAX_MESSAGE} characters", audit="bad-request")
                if parent is not None and (not isinstance(parent, str) or
                                           not is_commit_id(parent)):
                    raise HubError(400, None, "parentCommit must be a 40-hex commit id",
                                   audit="bad-request")
                ops.summary, ops.description, ops.parent = summary, desc, parent
            elif key == "file":
                path = _path(value)
                if value.get("encoding", "base64") != "base64" or \
                        not isinstance(content, Quarantined):
                    raise HubError(400, None, f"{path}: inline content must be base64",
                                   audit="bad-request")
                ops.adds[path] = NewFile(content, shared=False)
                ops.order.append(("add", path))
            elif key == "lfsFile":
                path = _path(value)
                oid, size = value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
                    raise HubError(400, None, f"{path}: lfsFile needs a sha256 oid",
                                   audit="bad-request")
                ops.adds[path] = NewFile(_lfs_content(ctx, repo, path, oid, size), shared=True)
                ops.order.append(("add", path))
            elif key in ("deletedFile", "deletedFolder"):
                raw = value.get("path")
                if key == "deletedFolder" and isinstance(raw, str):
                    value = {**value, "path": raw.rstrip("/")}
                path = _path(value)
                ops.deletes.append((path, key == "deletedFolder"))
                ops.order.append(("delete", path))
            else:
                raise HubError(400, None, f"unsupported operation {key!r}", audit="bad-request")
    except CommitBodyError as exc:
        raise HubError(400, None, f"malformed commit body: {exc}", audit="bad-request") from None
    except UploadError as exc:
        raise HubError(exc.status, None, exc.message, audit="bad-request") from None
    if first:
        raise HubError(400, None, "empty commit body", audit="bad-request")
    return ops


def _lfs_content(ctx: WriteContext, repo: str, path: str, oid: str,
                 size: object) -> Quarantined | StoredBlob:
    try:
        ctx.quarantine.lfs_path(oid)
    except UploadError as exc:
        raise HubError(400, None, f"{path}: {exc.message}", audit="bad-request") from None
    if size is None:  # a copy of a file this repository already has (size left out)
        rows = ctx.store.db.read("SELECT size FROM files WHERE repo = ? AND sha256 = ? LIMIT 1",
                                 (repo, oid))
        if rows:
            size = int(rows[0][0])
        elif (qp := ctx.quarantine.lfs_path(oid)).exists():
            size = qp.stat().st_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise HubError(400, None, f"{path}: lfsFile needs a size", audit="bad-request")
    q = ctx.quarantine.lfs_object(oid, size)
    if q is not None:
        return q
    stored = ctx.store.db.read("SELECT 1 FROM files WHERE repo = ? AND sha256 = ? AND size = ? "
                               "LIMIT 1", (repo, oid, size))
    if stored and ctx.store.blobs.exists(oid):
        with ctx.store.open_blob(oid, 0, 8192) as fh:
            head = fh.read(8192)
        return StoredBlob(oid, size, head)
    raise HubError(422, None, f"{path}: LFS object {oid} ({size} bytes) was not uploaded "
                   "(use the LFS batch API first)", audit="bad-request")


def _apply(ctx: WriteContext, base_files: list[FileEntry], ops: Operations
           ) -> dict[str, FileEntry | NewFile]:
    assert ops.adds is not None and ops.order is not None
    tree: dict[str, FileEntry | NewFile] = {f.path: f for f in base_files}
    deletes = dict(ops.deletes or [])
    for kind, path in ops.order:
        if kind == "add":
            tree[path] = ops.adds[path]
            continue
        if deletes.get(path):
            gone = [p for p in tree if p.startswith(path + "/")]
            if not gone:
                raise HubError(404, "EntryNotFound", f"A folder with this name doesn't exist: "
                               f"{path}", audit="not-found")
            for p in gone:
                del tree[p]
        elif path in tree:
            del tree[path]
        else:
            raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {path}",
                           audit="not-found")
    return tree


def _place(src: Path, dest: Path, move: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if move:
        os.replace(src, dest)
        return
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def create_commit(ctx: WriteContext, p: Principal, repo: str, revision: str, create_pr: bool,
                  body: BodyReader, base_url: str, call: WriteCall) -> Response:
    call.action = "push"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    ctx.sweep()
    call.revision = revision
    ref = target_ref(ctx, repo, revision, create_pr)
    owned: list[Quarantined] = []
    try:
        ops = read_operations(ctx, repo, body, owned)
        call.nbytes = body.total
        with repo_lock(ctx, repo):
            return _commit_locked(ctx, p, repo, ref, create_pr, ops, base_url, call)
    finally:
        _release(owned)  # whatever was not promoted (or was refused) leaves quarantine


def _commit_locked(ctx: WriteContext, p: Principal, repo: str, ref: str, create_pr: bool,
                   ops: Operations, base_url: str, call: WriteCall) -> Response:
    store = ctx.store
    base = ctx.push.push_head(repo, ref)
    if ops.parent is not None and ops.parent != base:
        raise HubError(412, None, f"parentCommit {ops.parent} is not the head of {ref} "
                       f"({base}; pushes awaiting review count)", audit="conflict")
    base_files = store.files(repo, base) if base else []
    tree = _apply(ctx, base_files, ops)
    entries: dict[str, FileEntry] = {}
    for path, item in tree.items():
        if isinstance(item, FileEntry):
            entries[path] = item
        else:
            d = item.digest(store, path)
            entries[path] = FileEntry(path, d.sha256, d.size, d.lfs, d.git_oid)
    if tree_hash(entries.values()) == tree_hash(base_files) and base is not None \
            and not create_pr:
        call.commit = base
        call.notes.append("no changes")
        return JSONResponse({"success": True, "commitOid": base,
                             "commitUrl": f"{base_url}/{repo}/commit/{base}"})
    message = ops.summary.strip() + (f"\n\n{ops.description.strip()}"
                                     if ops.description.strip() else "")
    now = time.time()
    cid = commit_hash(tree_hash(entries.values()), base, p.actor, now, message)
    call.commit = cid
    with store.staging() as stage:
        for path, item in tree.items():
            if isinstance(item, FileEntry) or isinstance(item.content, StoredBlob):
                sha = item.sha256 if isinstance(item, FileEntry) else item.content.sha256
                store.blobs.fetch_to(sha, stage / path)  # a hard link on local blobs
            else:
                _place(item.content.path, stage / path, move=not item.shared)
        staged = [StagedEntry(e.path, e.sha256, e.size) for e in entries.values()]
        gate = check_tree(stage, staged, repo, cid, ref, ctx.write.policy, ctx.cache)
        if gate.refused:
            message_text = gate.refusal_message()
            ctx.push.record_refusal(repo, ref, p.actor, p.identity, gate.rules, message_text,
                                    gate.report)
            for item in tree.values():  # verified LFS uploads of refused content go too
                if isinstance(item, NewFile) and isinstance(item.content, Quarantined) and \
                        item.shared:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(item.content.path)
            call.action = "push-refused"
            raise HubError(422, None, message_text, audit="refused")
        pr_num = None
        if create_pr:
            info = store.repo(repo)
            pr = ctx.push.open_pr(repo, ops.summary.strip()[:1000], ops.description, p.actor,
                                  ref if ref else (info.default_branch if info else "main"))
            pr_num, ref = pr.num, pr.ref
        elif ref.startswith("refs/pr/"):
            pr_num = int(ref.rsplit("/", 1)[1])
        two = ctx.write.policy.two_person_review
        summary = {"policy": gate.report["policy"]["source"], **gate.report["summary"]}
        with store.ingest() as session:
            for path, item in tree.items():
                if isinstance(item, FileEntry) or not isinstance(item.content, Quarantined):
                    continue  # already in the blob store
                e = entries[path]
                known = FileDigest(e.sha256, e.size, e.lfs, e.git_oid)
                if item.shared:
                    os.unlink(stage / path)  # the scan's link; promote the quarantined object
                    if not item.content.path.exists():
                        continue  # the same object backs an earlier path: already promoted
                    session.put_file(item.content.path, path, move=True, known=known)
                else:
                    session.put_file(stage / path, path, move=True, known=known)
            store.commit_files(list(entries.values()), repo, branch=ref, message=message,
                               author=p.actor, commit_id=cid, created_at=now,
                               scan_verdict=gate.verdict.value, scan_summary=summary,
                               session=session)
        ctx.push.record_push(PushRecord(
            repo, cid, ref, base, pr_num, p.actor, p.identity,
            p.token.id, 2 if two else 1, two, None, now), gate.report)
    call.revision = ref
    review_url = f"{base_url}/ui/repos/{repo}/commits/{cid}"
    out: dict[str, Any] = {
        "success": True, "commitOid": cid, "commitUrl": f"{base_url}/{repo}/commit/{cid}",
        "mlwarden": {"state": "pending", "ref": ref, "verdict": gate.verdict.value,
                     "review": review_url, "approvalsRequired": 2 if two else 1}}
    if pr_num is not None:
        out["pullRequestUrl"] = f"{base_url}/{repo}/discussions/{pr_num}"
        out["pullRequestRef"] = pr_ref(pr_num)
    warning = (f"mlwarden-{cid[:12]}; commit {cid[:12]} to {ref} awaits review before anyone "
               f"can download it: {review_url}")
    return JSONResponse(out, headers={"X-HF-Warning": warning})
