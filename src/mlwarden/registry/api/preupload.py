"""``POST /api/models/{repo}/preupload/{rev}``: how each file should travel.

huggingface_hub 2.x sends every file it was told is ``lfs`` through Xet whenever hf_xet is
installed, without asking the server, and has no fallback. The one answer that keeps such
a client off Xet is ``uploadMode: "regular"``: the bytes then travel base64-encoded inside
the commit request, which this registry streams into quarantine. That is the default
(``inline``) mode and it works with and without hf_xet. In ``lfs`` mode the registry
answers like the Hub (LFS for weights, binary content and files over 10 MiB) and clients
upload them through the LFS batch API, which streams multi-gigabyte files in parts; those
clients must run without hf_xet (``HF_HUB_DISABLE_XET=1``).

``oid`` tells the client what the file is at the revision already, so unchanged files are
not sent again: the git blob sha1 for ``regular`` answers, the sha256 for ``lfs`` ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from starlette.responses import JSONResponse, Response

from mlwarden.registry.api.context import Principal, WriteCall, WriteContext
from mlwarden.registry.api.repos import parse_json
from mlwarden.registry.responses import HubError
from mlwarden.store.errors import InvalidName, StoreError
from mlwarden.store.hashing import is_lfs
from mlwarden.store.model import FileEntry
from mlwarden.store.names import check_file_path

MAX_FILES = 1000


def target_ref(ctx: WriteContext, repo: str, revision: str, create_pr: bool) -> str:
    """The ref a push to ``revision`` extends: a branch, or an open ``refs/pr/N``."""
    from mlwarden.store.push import pr_number

    num = pr_number(revision)
    if num is not None and not create_pr:
        pr = ctx.push.pr(repo, num)
        if pr is None or pr.status != "open":
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (no open pull "
                           "request)", audit="not-found")
        return revision
    rows = ctx.store.db.read("SELECT kind FROM refs WHERE repo = ? AND name = ?",
                             (repo, revision))
    if rows and rows[0][0] != "branch":
        raise HubError(400, None, f"{revision} is a {rows[0][0]}: commits go to a branch",
                       audit="bad-request")
    if ctx.push.push_head(repo, revision) is None:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}",
                       audit="not-found")
    return revision


def content_git_sha1(ctx: WriteContext, f: FileEntry) -> str | None:
    """The git blob sha1 of a stored file's content (what a ``regular`` answer compares)."""
    if not f.lfs:
        return f.git_oid
    known = ctx.push.git_sha1(f.sha256)
    if known is not None:
        return known
    h = hashlib.sha1(b"blob %d\x00" % f.size, usedforsecurity=False)
    try:
        with ctx.store.open_blob(f.sha256) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except StoreError:
        return None
    sha1 = h.hexdigest()
    ctx.push.put_git_sha1(f.sha256, sha1)
    return sha1


def preupload(ctx: WriteContext, p: Principal, repo: str, revision: str, create_pr: bool,
              body: bytes, call: WriteCall) -> Response:
    call.action = "preupload"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    call.revision = revision
    ref = target_ref(ctx, repo, revision, create_pr)
    doc = parse_json(body)
    files = doc.get("files")
    if not isinstance(files, list) or len(files) > MAX_FILES:
        raise HubError(400, None, f"expected 'files': a list of at most {MAX_FILES}",
                       audit="bad-request")
    head = ctx.push.push_head(repo, ref)
    existing = {f.path: f for f in ctx.store.files(repo, head)} if head else {}
    out: list[dict[str, Any]] = []
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or \
                not isinstance(item.get("size"), int) or item["size"] < 0:
            raise HubError(400, None, "each file needs a path and a size", audit="bad-request")
        path = item["path"]
        try:
            check_file_path(path)
        except InvalidName as exc:
            raise HubError(400, None, str(exc), audit="bad-request") from None
        try:
            sample = base64.b64decode(item.get("sample") or "", validate=True)[:512]
        except (binascii.Error, ValueError):
            raise HubError(400, None, f"{path}: sample is not base64",
                           audit="bad-request") from None
        size = item["size"]
        if size > ctx.write.max_object_bytes:
            raise HubError(413, None, f"{path}: {size} bytes is over the registry's limit of "
                           f"{ctx.write.max_object_bytes}", audit="bad-request")
        mode = "lfs" if ctx.write.upload_mode == "lfs" and size > 0 and \
            is_lfs(path, size, sample) else "regular"
        entry: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
        old = existing.get(path)
        if old is not None:
            entry["oid"] = old.sha256 if mode == "lfs" else content_git_sha1(ctx, old)
        out.append(entry)
    return JSONResponse({"files": out, "commitOid": head})
