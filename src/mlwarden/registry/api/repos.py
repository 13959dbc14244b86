"""Repository-level write calls: create_repo / delete_repo, branches, tags, pull requests
(``refs/pr/N``), ``validate-yaml`` and ``whoami``. Handlers run in a worker thread.

Refs follow the registry's one rule: nothing unapproved becomes visible. A branch or tag
can be created only at an approved commit; a tag asked for on a pending commit is set when
that commit is approved. Every ref change is logged and mirrored into the signed log.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.responses import JSONResponse, Response

from mlwarden.registry.api.context import Principal, WriteCall, WriteContext
from mlwarden.registry.responses import HubError
from mlwarden.store.errors import ConflictError, InvalidName, RevisionNotFound
from mlwarden.store.hashing import LFS_SUFFIXES
from mlwarden.store.model import iso
from mlwarden.store.names import check_ref_name, is_commit_id
from mlwarden.store.push import PR_PREFIX, pr_number

GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES) + \
    "*tfevents* filter=lfs diff=lfs merge=lfs -text\n"


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise HubError(400, None, "malformed JSON body", audit="bad-request") from None
    if not isinstance(doc, dict):
        raise HubError(400, None, "expected a JSON object", audit="bad-request")
    return doc


def repo_lock(ctx: WriteContext, repo: str) -> Any:
    """One writer per repository at a time (push, create, delete), across processes and,
    with PostgreSQL, across hosts."""
    return ctx.store.lock(f"push:{repo}")


def _repo_id(doc: dict[str, Any]) -> str:
    name, org = doc.get("name"), doc.get("organization")
    if doc.get("type") not in (None, "model"):
        raise HubError(400, None, f"this registry holds model repositories only, not "
                       f"{doc.get('type')!r}", audit="bad-request")
    if not isinstance(name, str) or not isinstance(org, str) or not org:
        raise HubError(400, None, "repositories are named ORG/NAME: pass the organisation "
                       "in the repo id (create_repo('acme/my-model'))", audit="bad-request")
    return f"{org}/{name}"


def create_repo(ctx: WriteContext, p: Principal, body: bytes, base: str,
                call: WriteCall) -> Response:
    call.action = "create-repo"
    repo = _repo_id(parse_json(body))
    ctx.need(p, repo, "write", call)
    with repo_lock(ctx, repo):
        if ctx.store.repo(repo) is not None:
            msg = "You already created this model repo"  # the client reads "url" even here
            call.notes.append("exists")
            return JSONResponse({"error": msg, "url": f"{base}/{repo}"}, status_code=409,
                                headers={"X-Error-Message": msg})
        with ctx.store.staging() as stage:
            (stage / ".gitattributes").write_text(GITATTRIBUTES)
            c = ctx.store.commit_directory(stage, repo, move=True, author=p.actor,
                                           message="initial commit")
        # Server-generated content only: approved at once so the repository exists for
        # clients (the Hub's create_repo also makes this first commit).
        ctx.store.approve(repo, c.id, actor=f"mlwarden (create_repo by {p.actor})",
                          note="server-generated initial commit (.gitattributes)")
    call.commit = c.id
    return JSONResponse({"url": f"{base}/{repo}", "name": repo, "id": repo})


def delete_repo(ctx: WriteContext, p: Principal, body: bytes, call: WriteCall) -> Response:
    call.action = "delete-repo"
    repo = _repo_id(parse_json(body))
    if not p.token.is_admin:
        ctx.need(p, repo, "admin", call)  # 403 if the token can see it, else 404
    call.repo = repo
    with repo_lock(ctx, repo):
        ctx.repo_exists(repo)
        ctx.push.delete_repo(repo, actor=p.actor)
    return JSONResponse({"deleted": repo})


def _approved_commit(ctx: WriteContext, repo: str, rev: str) -> str:
    try:
        return ctx.store.resolve(repo, rev).id
    except RevisionNotFound:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}",
                       audit="not-found") from None


def _check_name(name: str, what: str) -> str:
    try:
        check_ref_name(name)
    except InvalidName as exc:
        raise HubError(400, None, str(exc), audit="bad-request") from None
    if name.startswith(PR_PREFIX) or name.startswith("refs/"):
        raise HubError(400, None, f"invalid {what} name {name!r}: refs/ is reserved",
                       audit="bad-request")
    return name


def create_branch(ctx: WriteContext, p: Principal, repo: str, branch: str, body: bytes,
                  call: WriteCall) -> Response:
    call.action = "create-branch"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    call.revision = _check_name(branch, "branch")
    info = ctx.store.repo(repo)
    start = parse_json(body).get("startingPoint") or (info.default_branch if info else "main")
    if not isinstance(start, str):
        raise HubError(400, None, "startingPoint must be a revision", audit="bad-request")
    commit = _approved_commit(ctx, repo, start)
    call.commit = commit
    try:
        ctx.push.create_ref(repo, branch, "branch", commit, p.actor, f"create_branch from {start}")
    except ConflictError as exc:
        raise HubError(409, None, str(exc), audit="conflict") from None
    return JSONResponse({"name": branch, "targetCommit": commit})


def delete_branch(ctx: WriteContext, p: Principal, repo: str, branch: str,
                  call: WriteCall) -> Response:
    call.action = "delete-branch"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    call.revision = branch
    try:
        call.commit = ctx.push.delete_ref(repo, branch, "branch", p.actor)
    except RevisionNotFound:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}",
                       audit="not-found") from None
    except ConflictError as exc:
        raise HubError(403, None, str(exc), audit="denied") from None
    return JSONResponse({"deleted": branch})


def create_tag(ctx: WriteContext, p: Principal, repo: str, revision: str, body: bytes,
               call: WriteCall) -> Response:
    call.action = "create-tag"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    doc = parse_json(body)
    tag = doc.get("tag")
    if not isinstance(tag, str):
        raise HubError(400, None, "missing tag name", audit="bad-request")
    _check_name(tag, "tag")
    call.revision = tag
    note = doc.get("message") if isinstance(doc.get("message"), str) else ""
    pending = ctx.push.push(repo, revision) if is_commit_id(revision) else None
    try:
        if pending is not None and not ctx.store.commit(repo, revision).approved:
            # A tag for a pushed commit still under review: set when it is approved.
            ctx.push.request_tag(repo, revision, tag)
            call.commit = revision
            call.notes.append("tag requested for a pending commit")
            return JSONResponse({"tag": tag, "targetCommit": revision, "pending": True})
        commit = _approved_commit(ctx, repo, revision)
        call.commit = commit
        ctx.push.create_ref(repo, tag, "tag", commit, p.actor, str(note) or "create_tag")
    except ConflictError as exc:
        raise HubError(409, None, str(exc), audit="conflict") from None
    return JSONResponse({"tag": tag, "targetCommit": call.commit})


def delete_tag(ctx: WriteContext, p: Principal, repo: str, tag: str, call: WriteCall) -> Response:
    call.action = "delete-tag"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    call.revision = tag
    try:
        call.commit = ctx.push.delete_ref(repo, tag, "tag", p.actor)
    except RevisionNotFound:
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {tag}",
                       audit="not-found") from None
    return JSONResponse({"deleted": tag})


# ------------------------------------------------------------------------ pull requests


def create_discussion(ctx: WriteContext, p: Principal, repo: str, body: bytes, base: str,
                      call: WriteCall) -> Response:
    call.action = "create-pr"
    ctx.need(p, repo, "write", call)
    ctx.repo_exists(repo)
    doc = parse_json(body)
    if doc.get("pullRequest") is not True:
        raise HubError(400, None, "this registry has pull requests only, no discussions",
                       audit="bad-request")
    title, desc = doc.get("title"), doc.get("description", "")
    if not isinstance(title, str) or not title.strip() or len(title) > 1000 or \
            not isinstance(desc, str) or len(desc) > 64 * 1024:
        raise HubError(400, None, "a pull request needs a title (and at most 64 KiB of "
                       "description)", audit="bad-request")
    info = ctx.store.repo(repo)
    pr = ctx.push.open_pr(repo, title.strip(), desc, p.actor,
                          info.default_branch if info else "main")
    call.revision = pr.ref
    return JSONResponse({"num": pr.num, "pullRequest": True,
                         "url": f"{base}/{repo}/discussions/{pr.num}"})


def discussion_details(ctx: WriteContext, p: Principal, repo: str, num_text: str,
                       call: WriteCall) -> Response:
    call.action = "pr-info"
    ctx.need(p, repo, "read", call)
    ctx.repo_exists(repo)
    num = pr_number(PR_PREFIX + num_text)
    pr = ctx.push.pr(repo, num) if num is not None else None
    if pr is None:
        raise HubError(404, None, f"pull request {num_text} not found", audit="not-found")
    call.revision = pr.ref
    return JSONResponse(pr_json(pr.repo, pr.num, pr.title, pr.author, pr.created_at,
                                pr.status, pr.base_ref))


def pr_json(repo: str, num: int, title: str, author: str, created: float, status: str,
            base_ref: str) -> dict[str, Any]:
    """The discussion-details document huggingface_hub's get_discussion_details reads."""
    return {"num": num, "title": title, "author": {"name": author}, "createdAt": iso(created),
            "status": status, "repo": {"name": repo, "type": "model"}, "isPullRequest": True,
            "events": [], "changes": {"base": f"refs/heads/{base_ref}"},
            "filesWithConflicts": [], "diff": None, "pinned": False}


# ------------------------------------------------------------------------ small calls


def validate_yaml(body: bytes, call: WriteCall) -> Response:
    """README front matter check, as create_commit asks before uploading a model card."""
    call.action = "validate-yaml"
    doc = parse_json(body)
    content = doc.get("content")
    if not isinstance(content, str):
        raise HubError(400, None, "missing content", audit="bad-request")
    errors: list[dict[str, str]] = []
    if content.startswith("---"):
        end = content.find("\n---", 3)
        if end < 0:
            errors.append({"message": "front matter is not closed by '---'"})
        else:
            import yaml

            try:
                meta = yaml.safe_load(content[3:end])
            except yaml.YAMLError as exc:
                errors.append({"message": f"front matter is not valid YAML: {exc}"})
            else:
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "front matter must be a mapping"})
    status = 400 if errors else 200
    return JSONResponse({"errors": errors, "warnings": []}, status_code=status)


def whoami(ctx: WriteContext, p: Principal, call: WriteCall) -> Response:
    call.action = "whoami"
    orgs = sorted({s.target.split("/", 1)[0] for s in p.token.scopes if s.target != "*"})
    can_write = p.token.can_anywhere("write")
    return JSONResponse({
        "type": "user", "id": p.token.id, "name": p.identity, "fullname": p.identity,
        "orgs": [{"type": "org", "name": o} for o in orgs],
        "auth": {"type": "access_token", "accessToken": {
            "displayName": p.token.name, "role": "write" if can_write else "read",
            "createdAt": iso(p.token.created_at)}},
        "mlwarden": {"scopes": [str(s) for s in p.token.scopes],
                     "expires": iso(p.token.expires_at) if p.token.expires_at else None,
                     "at": iso(time.time())},
    })
