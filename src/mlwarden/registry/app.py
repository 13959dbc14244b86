"""The Hub-compatible ASGI application (Starlette).

Routing works on the raw request path: huggingface_hub encodes a revision with
``quote(rev, safe="")`` (``refs%2Fpr%2F1``) and a tree sub-path with ``%2F``, so each raw
segment is decoded on its own, after splitting. Access control runs before any lookup,
and everything a client cannot see answers exactly like something that does not exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlwarden.registry.audit import AuditWriter
from mlwarden.registry.responses import BlobResponse, HubError, parse_range
from mlwarden.store import AuditEntry, Commit, FileEntry, RepoInfo, Store
from mlwarden.store.errors import InvalidName, RevisionNotFound, StoreError
from mlwarden.store.hashing import lfs_pointer
from mlwarden.store.model import iso
from mlwarden.store.names import check_file_path, check_repo_id
from mlwarden.store.tokens import TokenInfo


@dataclass(frozen=True)
class Settings:
    allow_anonymous: bool = False
    tree_page_size: int = 1000
    max_body_bytes: int = 1 << 20  # paths-info bodies; nothing else reads a body
    max_target_bytes: int = 8192  # request path + query
    # h11 bounds a head only while it is incomplete; a large head in one read passes it.
    max_header_bytes: int = 16 * 1024
    body_timeout: float = 10.0  # seconds to receive a whole request body
    max_paths: int = 1000  # paths per paths-info request


@dataclass
class Principal:
    actor: str
    token: TokenInfo | None


@dataclass
class Call:
    """What one request is about; filled in as it is understood, then audited."""

    method: str
    client: str
    action: str = "request"
    actor: str = "anonymous"
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)


def not_found_repo(detail: str) -> HubError:
    return HubError(404, "RepoNotFound", "Repository not found", audit=detail)


def bad_request(message: str) -> HubError:
    return HubError(400, None, message, audit="bad-request")


def _segments(raw_path: bytes) -> list[str]:
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise bad_request("request path is not ASCII") from None
    if not text.startswith("/"):
        raise bad_request("request path must be absolute")
    try:
        return [unquote(s, errors="strict") for s in text[1:].split("/")]
    except UnicodeDecodeError:
        raise bad_request("request path is not valid UTF-8") from None


def _check_rev(rev: str) -> str:
    if not rev or len(rev) > 256 or any(ord(c) < 0x20 or c in "\\\x7f" for c in rev):
        raise bad_request("invalid revision")
    return rev


def _repo_path(call: Call, path: str) -> str:
    try:
        return check_file_path(path)
    except InvalidName as exc:
        raise bad_request(str(exc)) from None


def _file_entry(f: FileEntry, commit: Commit | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "oid": f.git_oid, "size": f.size, "path": f.path}
    if f.lfs:
        out["lfs"] = {"oid": f.sha256, "size": f.size,
                      "pointerSize": len(lfs_pointer(f.sha256, f.size))}
    if commit is not None:
        out["lastCommit"] = {"id": commit.id, "title": commit.message,
                             "date": iso(commit.created_at)}
    return out


def _dir_entry(path: str, files: list[FileEntry]) -> dict[str, Any]:
    h = hashlib.sha1(usedforsecurity=False)
    for f in files:
        if f.path.startswith(path + "/"):
            h.update(f"{f.path}\0{f.git_oid}\n".encode())
    return {"type": "directory", "oid": h.hexdigest(), "path": path}


class Registry:
    """Request handling that needs the store. Methods run in a worker thread."""

    def __init__(self, store: Store, settings: Settings, audit: AuditWriter) -> None:
        self.store = store
        self.settings = settings
        self.audit = audit

    # -------------------------------------------------------------- access control

    def authenticate(self, authorization: str | None, call: Call) -> Principal:
        if authorization:
            scheme, _, cred = authorization.partition(" ")
            cred = cred.strip()
            if scheme.lower() != "bearer" or not cred:
                raise self._unauthorized("unsupported Authorization scheme (use Bearer)")
            if cred.startswith("mlw_"):
                info = self.store.verify_token(cred)
                if info is None:
                    raise self._unauthorized("invalid, expired or revoked token")
                call.actor = f"token:{info.name}/{info.id}"
                return Principal(call.actor, info)
            if not self.settings.allow_anonymous:
                raise self._unauthorized("not an mlwarden token")
            # huggingface_hub sends a stored huggingface.co token to any endpoint; in
            # anonymous mode it carries no rights here, so it is ignored, not rejected.
            call.notes.append("foreign token ignored")
        elif not self.settings.allow_anonymous:
            raise self._unauthorized("authentication required")
        return Principal("anonymous", None)

    @staticmethod
    def _unauthorized(why: str) -> HubError:
        # X-Error-Code RepoNotFound makes huggingface_hub raise RepositoryNotFoundError even
        # on an http:// endpoint, where a bare 401 would become a generic HTTP error.
        return HubError(401, "RepoNotFound", f"Invalid credentials: {why}",
                        {"WWW-Authenticate": 'Bearer realm="mlwarden"'}, audit="denied")

    def visible_repo(self, principal: Principal, repo: str, call: Call) -> RepoInfo:
        try:
            check_repo_id(repo)
        except InvalidName as exc:
            raise bad_request(str(exc)) from None
        call.repo = repo
        if principal.token is not None and not principal.token.can_read(repo):
            raise not_found_repo("denied")
        info = self.store.visible_repo(repo)
        if info is None:
            raise not_found_repo("denied" if self.store.repo(repo) else "not-found")
        if info.gated and principal.token is None:
            raise HubError(401, "GatedRepo", f"Access to model {repo} is restricted: "
                           "a token with read access is required", audit="denied")
        return info

    def commit_for(self, repo: RepoInfo, revision: str | None, call: Call) -> Commit:
        rev = _check_rev(revision if revision is not None else repo.default_branch)
        call.revision = rev
        try:
            c = self.store.resolve(repo.id, rev)
        except RevisionNotFound:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}",
                           audit="not-found") from None
        call.commit = c.id
        return c

    # -------------------------------------------------------------- endpoints

    def model_info(self, principal: Principal, repo_id: str, revision: str | None,
                   query: dict[str, list[str]], call: Call) -> Response:
        call.action = "info"
        repo = self.visible_repo(principal, repo_id, call)
        c = self.commit_for(repo, revision, call)
        files = self.store.files(repo.id, c.id)
        blobs = query.get("blobs", ["false"])[-1].lower() in ("1", "true")
        siblings: list[dict[str, Any]] = []
        for f in files:
            s: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                s.update(size=f.size, blobId=f.git_oid)
                if f.lfs:
                    s["lfs"] = {"sha256": f.sha256, "size": f.size,
                                "pointerSize": len(lfs_pointer(f.sha256, f.size))}
            siblings.append(s)
        org = repo.id.split("/", 1)[0]
        body = {
            "_id": hashlib.sha1(repo.id.encode(), usedforsecurity=False).hexdigest()[:24],
            "id": repo.id, "modelId": repo.id, "author": org, "sha": c.id,
            "lastModified": iso(c.created_at), "createdAt": iso(repo.created_at),
            "private": True, "disabled": False, "gated": "manual" if repo.gated else False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings, "spaces": [],
            "usedStorage": sum(f.size for f in files),
            "mlwarden": {"approved": c.approved, "scanVerdict": c.scan_verdict,
                         "commitMessage": c.message},
        }
        return JSONResponse(body)

    def list_models(self, principal: Principal, query: dict[str, list[str]],
                    call: Call) -> Response:
        """``GET /api/models[?author=ORG][&search=TEXT]``: the repositories this principal
        can see (``HfApi.list_models``), sorted by id; gated ones only with a token."""
        call.action = "list"
        author = query.get("author", [None])[-1]
        search = (query.get("search", [""])[-1] or "").lower()
        out: list[dict[str, Any]] = []
        for info in self.store.repos():
            org = info.id.split("/", 1)[0]
            if author is not None and org != author:
                continue
            if search and search not in info.id.lower():
                continue
            if principal.token is not None and not principal.token.can_read(info.id):
                continue
            if info.gated and principal.token is None:
                continue
            if self.store.visible_repo(info.id) is None:
                continue
            out.append({"_id": hashlib.sha1(info.id.encode(), usedforsecurity=False)
                        .hexdigest()[:24], "id": info.id, "modelId": info.id, "author": org,
                        "private": True, "gated": "manual" if info.gated else False,
                        "createdAt": iso(info.created_at), "tags": [], "downloads": 0,
                        "likes": 0})
        return JSONResponse(sorted(out, key=lambda d: d["id"]))

    def tree(self, principal: Principal, repo_id: str, revision: str, path: str,
             query: dict[str, list[str]], url: Callable[[int], str], call: Call) -> Response:
        call.action = "tree"
        repo = self.visible_repo(principal, repo_id, call)
        c = self.commit_for(repo, revision, call)
        if path:
            path = _repo_path(call, path)
            call.path = path
        files = self.store.files(repo.id, c.id)
        recursive = query.get("recursive", ["false"])[-1].lower() in ("1", "true")
        expand = query.get("expand", ["false"])[-1].lower() in ("1", "true")
        prefix = path + "/" if path else ""
        under = [f for f in files if f.path.startswith(prefix)]
        if path and not under:
            raise HubError(404, "EntryNotFound", f"{path} does not exist at {c.id}",
                           {"X-Repo-Commit": c.id}, audit="not-found")
        entries: list[dict[str, Any]] = []
        dirs: dict[str, None] = {}
        for f in under:
            rest = f.path[len(prefix):].split("/")
            for i in range(1, len(rest) if recursive else min(2, len(rest))):
                dirs.setdefault(prefix + "/".join(rest[:i]))
            if recursive or len(rest) == 1:
                entries.append(_file_entry(f, c if expand else None))
        entries += [_dir_entry(d, under) for d in dirs]
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        try:
            start = int(query.get("cursor", ["0"])[-1])
        except ValueError:
            raise bad_request("invalid cursor") from None
        if start < 0:
            raise bad_request("invalid cursor")
        page = entries[start:start + self.settings.tree_page_size]
        headers = {}
        if start + len(page) < len(entries):
            headers["Link"] = f'<{url(start + len(page))}>; rel="next"'
        return JSONResponse(page, headers=headers)

    def paths_info(self, principal: Principal, repo_id: str, revision: str,
                   paths: list[str], expand: bool, call: Call) -> Response:
        call.action = "paths-info"
        repo = self.visible_repo(principal, repo_id, call)
        c = self.commit_for(repo, revision, call)
        files = self.store.files(repo.id, c.id)
        by_path = {f.path: f for f in files}
        out: list[dict[str, Any]] = []
        for p in dict.fromkeys(paths):
            try:
                check_file_path(p)
            except InvalidName:
                continue  # like a missing path: silently left out
            if p in by_path:
                out.append(_file_entry(by_path[p], c if expand else None))
            elif any(f.path.startswith(p + "/") for f in files):
                out.append(_dir_entry(p, files))
        return JSONResponse(out)

    def refs(self, principal: Principal, repo_id: str, query: dict[str, list[str]],
             call: Call) -> Response:
        call.action = "refs"
        repo = self.visible_repo(principal, repo_id, call)
        body: dict[str, Any] = {"branches": [], "converts": [], "tags": []}
        prs: list[dict[str, Any]] = []
        for r in self.store.refs(repo.id):
            if r.name.startswith("refs/pr/"):  # approved pull-request heads (write API)
                prs.append({"name": r.name, "ref": r.name, "targetCommit": r.commit})
                continue
            key, ns = ("branches", "heads") if r.kind == "branch" else ("tags", "tags")
            body[key].append({"name": r.name, "ref": f"refs/{ns}/{r.name}",
                              "targetCommit": r.commit})
        if query.get("include_prs", ["0"])[-1].lower() in ("1", "true"):
            body["pullRequests"] = prs
        return JSONResponse(body)

    def resolve(self, principal: Principal, repo_id: str, revision: str, path: str,
                head: bool, range_header: str | None, call: Call) -> Response:
        call.action = "resolve" if head else "download"
        repo = self.visible_repo(principal, repo_id, call)
        c = self.commit_for(repo, revision, call)
        path = _repo_path(call, path)
        call.path = path
        f = self.store.file(repo.id, c.id, path)
        if f is None:
            raise HubError(404, "EntryNotFound", f"{path} does not exist at {c.id}",
                           {"X-Repo-Commit": c.id}, audit="not-found")
        headers = {"X-Repo-Commit": c.id, "ETag": f'"{f.etag}"',
                   "Content-Type": "application/octet-stream",
                   "Content-Disposition": f"attachment; filename*=UTF-8''"
                                          f"{_quote_name(path.rsplit('/', 1)[-1])}"}
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        byte_range = parse_range(range_header, f.size)
        started = time.time()

        def done(status: int, sent: int) -> None:
            self.audit.log(_entry(call, status, sent, started))

        return BlobResponse(self.store.blobs, f.sha256, f.size, headers, head, byte_range,
                            done)


def _quote_name(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _entry(call: Call, status: int, nbytes: int, at: float | None = None,
           action: str | None = None, detail: str = "") -> AuditEntry:
    notes = [*call.notes, detail] if detail else call.notes
    return AuditEntry(at or time.time(), call.actor, call.client, call.method,
                      action or call.action, call.repo, call.revision, call.commit, call.path,
                      status, nbytes, "; ".join(n for n in notes if n))


async def _read_body(request: Request, settings: Settings) -> bytes:
    chunks: list[bytes] = []
    total = 0
    try:
        with anyio.fail_after(settings.body_timeout):
            async for chunk in request.stream():
                total += len(chunk)
                if total > settings.max_body_bytes:
                    raise HubError(413, None, "request body too large", audit="bad-request")
                chunks.append(chunk)
    except TimeoutError:
        raise HubError(408, None, "request body not received in time",
                       audit="bad-request") from None
    return b"".join(chunks)


def _parse_paths_body(body: bytes, content_type: str, settings: Settings) -> tuple[list[str], bool]:
    if content_type.startswith("application/json"):
        try:
            doc = json.loads(body)
        except ValueError:
            raise bad_request("malformed JSON body") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("paths", []), list):
            raise bad_request("expected {\"paths\": [...]}")
        paths = [p for p in doc.get("paths", []) if isinstance(p, str)]
        expand = bool(doc.get("expand", False))
    else:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=False, strict_parsing=False,
                            max_num_fields=settings.max_paths + 10)
        except (UnicodeDecodeError, ValueError):
            raise bad_request("malformed form body") from None
        paths = form.get("paths", [])
        expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
    if len(paths) > settings.max_paths:
        raise bad_request(f"at most {settings.max_paths} paths per request")
    return paths, expand


def create_app(store: Store, settings: Settings | None = None,
               audit: AuditWriter | None = None, *,
               routes: Sequence[BaseRoute] = ()) -> ASGIApp:
    """The registry application. ``routes`` (Starlette routes, e.g. the write API and the
    console) are matched before the read API; they declare their own methods and enforce
    their own body limits, and reach the store, access control and audit through
    ``request.app.state.registry`` (a Registry) and ``request.app.state.audit``."""
    settings = settings or Settings()
    writer = audit or AuditWriter(store)
    reg = Registry(store, settings, writer)

    async def endpoint(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        call = Call(request.method, client)
        try:
            return await _dispatch(request, call)
        except HubError as exc:
            writer.log(_entry(call, exc.status, 0,
                              action="denied" if exc.audit == "denied" else None,
                              detail=exc.message))
            return exc.response()
        except StoreError as exc:
            writer.log(_entry(call, 503, 0, detail=f"store error: {exc}"))
            return HubError(503, None, "store unavailable").response()

    async def _dispatch(request: Request, call: Call) -> Response:
        segs = _segments(request.scope["raw_path"])
        method = request.method
        query = parse_qs(request.scope["query_string"].decode("latin-1"))
        authz = request.headers.get("authorization")
        if segs == ["healthz"]:
            return PlainTextResponse("ok")
        if segs[0] in ("datasets", "spaces", "kernels") or (
                segs[0] == "api" and len(segs) > 1 and segs[1] in ("datasets", "spaces")):
            await anyio.to_thread.run_sync(reg.authenticate, authz, call)
            raise not_found_repo("not-found")  # the store holds models only
        if segs == ["api", "models"] and method == "GET":
            def run_list() -> Response:
                principal = reg.authenticate(authz, call)
                return reg.list_models(principal, query, call)

            resp = await anyio.to_thread.run_sync(run_list)
            writer.log(_entry(call, resp.status_code, 0))
            return resp
        if segs[0] == "api" and len(segs) >= 4 and segs[1] == "models":
            repo = f"{segs[2]}/{segs[3]}"
            rest = segs[4:]
            if method == "POST":
                if len(rest) < 2 or rest[0] != "paths-info":
                    raise HubError(405, None, "method not allowed", audit="bad-request")
                body = await _read_body(request, settings)
                paths, expand = _parse_paths_body(
                    body, request.headers.get("content-type", ""), settings)
                rev = "/".join(rest[1:])

                def run_paths() -> Response:
                    principal = reg.authenticate(authz, call)
                    return reg.paths_info(principal, repo, rev, paths, expand, call)

                resp = await anyio.to_thread.run_sync(run_paths)
            else:
                resp = await anyio.to_thread.run_sync(
                    _route_api, reg, authz, repo, rest, query, request, call)
            writer.log(_entry(call, resp.status_code, 0))
            return resp
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            repo = f"{segs[0]}/{segs[1]}"
            rev, path = segs[3], "/".join(segs[4:])
            range_header = request.headers.get("range")

            def run_resolve() -> Response:
                principal = reg.authenticate(authz, call)
                return reg.resolve(principal, repo, rev, path, method == "HEAD",
                                   range_header, call)

            # The blob response audits itself once the bytes are out.
            return await anyio.to_thread.run_sync(run_resolve)
        raise HubError(404, None, "not found", audit="not-found")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(writer.close)

    app = Starlette(routes=[*routes,
                            Route("/{rest:path}", endpoint, methods=["GET", "HEAD", "POST"])],
                    lifespan=lifespan)
    app.state.registry = reg
    app.state.audit = writer
    return Guard(app, settings, routes)


def _route_api(reg: Registry, authz: str | None, repo: str, rest: list[str],
               query: dict[str, list[str]], request: Request, call: Call) -> Response:
    principal = reg.authenticate(authz, call)
    if not rest:
        return reg.model_info(principal, repo, None, query, call)
    kind = rest[0]
    if kind == "revision" and len(rest) >= 2:
        return reg.model_info(principal, repo, "/".join(rest[1:]), query, call)
    if kind == "tree" and len(rest) >= 2:

        def url(cursor: int) -> str:
            return str(request.url.include_query_params(cursor=str(cursor)))

        return reg.tree(principal, repo, rest[1], "/".join(rest[2:]), query, url, call)
    if kind == "refs" and len(rest) == 1:
        return reg.refs(principal, repo, query, call)
    # Anything else (commits, discussions, xet tokens) is not offered by this registry.
    reg.visible_repo(principal, repo, call)
    raise HubError(404, None, "not supported by this registry", audit="not-found")


class Guard:
    """Cheap refusals before any routing: methods, target length, declared body size.

    Requests for a mounted route skip the method and body checks (the route declares its
    methods and bounds its own body); the target, NUL and header checks apply to all."""

    def __init__(self, app: ASGIApp, settings: Settings,
                 mounted: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.settings = settings
        self.mounted = tuple(mounted)
        self.state = getattr(app, "state", None)

    def _is_mounted(self, scope: Scope) -> bool:
        return any(r.matches(scope)[0] is not Match.NONE for r in self.mounted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error: HubError | None = None
        mounted = bool(self.mounted) and self._is_mounted(scope)
        if scope["method"] not in ("GET", "HEAD", "POST") and not mounted:
            error = HubError(405, None, "method not allowed")
        elif len(scope["raw_path"]) + len(scope["query_string"]) > \
                self.settings.max_target_bytes:
            error = HubError(414, None, "request target too long")
        elif b"\x00" in scope["raw_path"] or b"%00" in scope["raw_path"]:
            error = HubError(400, None, "NUL in request path")
        elif sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > \
                self.settings.max_header_bytes:
            error = HubError(431, None, "request headers too large")
        elif not mounted:
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if not value.isdigit():
                        error = HubError(400, None, "invalid Content-Length")
                    elif int(value) > self.settings.max_body_bytes:
                        error = HubError(413, None, "request body too large")
        if error is not None:
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
