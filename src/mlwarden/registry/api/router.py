"""One Starlette route that claims the write calls and the console; everything else falls
through to the read API unchanged.

Matching works on the raw path, like the read API (a revision arrives as ``refs%2Fpr%2F1``).
The read application's guard still checks the request target, NUL bytes and header size;
because this route matches, it lets PUT and DELETE through and leaves body limits to the
handlers, which bound every body themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import anyio
from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from mlwarden.registry.api import commit as commit_api
from mlwarden.registry.api import lfs, preupload, repos
from mlwarden.registry.api.context import BodyReader, WriteCall, WriteContext
from mlwarden.registry.responses import HubError
from mlwarden.store.errors import StoreError

_REPO_ACTIONS = {"preupload", "commit", "branch", "tag", "discussions", "xet-write-token"}
Handler = Callable[[Request, WriteCall], Awaitable[Response]]


def _segments(raw: bytes) -> list[str] | None:
    try:
        text = raw.decode("ascii")
        return [unquote(s, errors="strict") for s in text[1:].split("/")]
    except UnicodeDecodeError:
        return None


class WriteRoute(BaseRoute):
    def __init__(self, ctx: WriteContext, console: ASGIApp | None) -> None:
        self.ctx = ctx
        self.console = console

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        raw: bytes = scope["raw_path"]
        if self.console is not None and (raw == b"/ui" or raw.startswith(b"/ui/")):
            return Match.FULL, {}
        if self.ctx.write.enabled and self._match(scope) is not None:
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **params: Any) -> URLPath:
        raise NoMatchFound(name, params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        if app is not None:
            self.ctx.bind(app.state.registry.authenticate, app.state.audit)
        raw: bytes = scope["raw_path"]
        if self.console is not None and (raw == b"/ui" or raw.startswith(b"/ui/")):
            await self.console(scope, receive, send)
            return
        handler = self._match(scope)
        if handler is None:  # pragma: no cover - matches() said yes
            await Response("not found", 404)(scope, receive, send)
            return
        request = Request(scope, receive)
        call = WriteCall(scope["method"], request.client.host if request.client else "-")
        try:
            response = await handler(request, call)
            self.ctx.audit.log(call.entry(response.status_code))
        except HubError as exc:
            self.ctx.audit.log(call.entry(exc.status, exc.message[:500]))
            response = exc.response()
        except StoreError as exc:
            self.ctx.audit.log(call.entry(503, f"store error: {exc}"))
            response = HubError(503, None, "store unavailable").response()
        await response(scope, receive, send)

    # ------------------------------------------------------------------ routing

    def _match(self, scope: Scope) -> Handler | None:
        segs = _segments(scope["raw_path"])
        if not segs:
            return None
        m = scope["method"]
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        create_pr = query.get("create_pr", "") in ("1", "true")
        ctx = self.ctx
        run = self._run

        if segs[0] == "api" and len(segs) >= 2:
            if segs[1:] == ["repos", "create"] and m == "POST":
                return lambda r, c: run(r, c, lambda p, body, base: repos.create_repo(
                    ctx, p, body, base, c))
            if segs[1:] == ["repos", "delete"] and m == "DELETE":
                return lambda r, c: run(r, c, lambda p, body, base: repos.delete_repo(
                    ctx, p, body, c))
            if segs[1:] == ["validate-yaml"] and m == "POST":
                return lambda r, c: run(r, c, lambda p, body, base: repos.validate_yaml(body, c))
            if segs[1:] == ["whoami-v2"] and m == "GET":
                return lambda r, c: run(r, c, lambda p, body, base: repos.whoami(ctx, p, c),
                                        body=False)
            if segs[1] == "mlwarden" and len(segs) >= 6 and segs[2] == "lfs":
                return self._lfs_transfer(segs[3:], m, query)
            if segs[1] == "models" and len(segs) >= 5 and segs[4] in _REPO_ACTIONS:
                return self._repo_call(f"{segs[2]}/{segs[3]}", segs[4], segs[5:], m, create_pr)
            if segs[1] in ("datasets", "spaces") and len(segs) >= 5 and \
                    segs[4] in _REPO_ACTIONS and m != "GET":
                return lambda r, c: self._fail(HubError(
                    404, "RepoNotFound", "this registry holds model repositories only"))
            return None
        if len(segs) == 6 and segs[1].endswith(".git") and segs[2:] == \
                ["info", "lfs", "objects", "batch"] and m == "POST":
            repo = f"{segs[0]}/{segs[1][:-4]}"
            return lambda r, c: run(r, c, lambda p, body, base: lfs.batch(
                ctx, p, repo, body, base, c))
        return None

    def _repo_call(self, repo: str, action: str, rest: list[str], m: str,
                   create_pr: bool) -> Handler | None:
        ctx, run = self.ctx, self._run
        arg = "/".join(rest)
        if action == "preupload" and m == "POST" and arg:
            return lambda r, c: run(r, c, lambda p, body, base: preupload.preupload(
                ctx, p, repo, arg, create_pr, body, c))
        if action == "commit" and m == "POST" and arg:
            return lambda r, c: self._run_stream(r, c, lambda p, reader, base: (
                commit_api.create_commit(ctx, p, repo, arg, create_pr, reader, base, c)),
                ctx.write.max_commit_bytes)
        if action == "branch" and arg and m in ("POST", "DELETE"):
            if m == "POST":
                return lambda r, c: run(r, c, lambda p, body, base: repos.create_branch(
                    ctx, p, repo, arg, body, c))
            return lambda r, c: run(r, c, lambda p, body, base: repos.delete_branch(
                ctx, p, repo, arg, c), body=False)
        if action == "tag" and arg and m in ("POST", "DELETE"):
            if m == "POST":
                return lambda r, c: run(r, c, lambda p, body, base: repos.create_tag(
                    ctx, p, repo, arg, body, c))
            return lambda r, c: run(r, c, lambda p, body, base: repos.delete_tag(
                ctx, p, repo, arg, c), body=False)
        if action == "discussions":
            if m == "POST" and not arg:
                return lambda r, c: run(r, c, lambda p, body, base: repos.create_discussion(
                    ctx, p, repo, body, base, c))
            if m == "GET" and rest and len(rest) == 1 and rest[0]:
                return lambda r, c: run(r, c, lambda p, body, base: repos.discussion_details(
                    ctx, p, repo, rest[0], c), body=False)
            return None
        if action == "xet-write-token":
            return lambda r, c: self._fail(HubError(
                501, None, "this registry does not speak Xet: it answers preupload so that "
                "huggingface_hub sends file contents inline; if you see this, the server runs "
                "with --lfs-uploads and the client must set HF_HUB_DISABLE_XET=1"))
        return None

    def _lfs_transfer(self, rest: list[str], m: str, query: dict[str, str]) -> Handler | None:
        """Signed upload URLs (no token header) and verify (token header)."""
        if len(rest) < 3:
            return None
        repo, oid, tail = f"{rest[0]}/{rest[1]}", rest[2], rest[3:]
        ctx = self.ctx
        if tail == ["verify"] and m == "POST":
            return lambda r, c: self._run(r, c, lambda p, body, base: lfs.verify(
                ctx, p, repo, oid, body, c))
        if not tail and m == "PUT":
            return lambda r, c: self._run_anon_stream(r, c, lambda reader: lfs.upload_object(
                ctx, repo, oid, query, reader, c), ctx.write.max_object_bytes)
        if not tail and m == "POST":
            return lambda r, c: self._run_anon_stream(r, c, lambda reader: (
                lfs.complete_multipart(ctx, repo, oid, query, reader.read_all(), c)),
                ctx.write.max_json_bytes)
        if len(tail) == 2 and tail[0] == "part" and m == "PUT":
            return lambda r, c: self._run_anon_stream(r, c, lambda reader: lfs.upload_part(
                ctx, repo, oid, tail[1], query, reader, c), ctx.write.multipart_chunk)
        return None

    # ------------------------------------------------------------------ execution

    async def _fail(self, exc: HubError) -> Response:
        raise exc

    async def _run(self, request: Request, call: WriteCall,
                   fn: Callable[..., Response], body: bool = True) -> Response:
        """Authenticate, read a bounded JSON body, run ``fn(principal, body, base_url)``."""
        authz = request.headers.get("authorization")
        base = self.ctx.base_url(request)
        reader = BodyReader(request, self.ctx.write.max_json_bytes, self.ctx.write.idle_timeout)

        def work() -> Response:
            p = self.ctx.principal(authz, call)
            raw = reader.read_all() if body else b""
            return fn(p, raw, base)

        return await anyio.to_thread.run_sync(work)

    async def _run_stream(self, request: Request, call: WriteCall,
                          fn: Callable[..., Response], limit: int) -> Response:
        authz = request.headers.get("authorization")
        base = self.ctx.base_url(request)
        reader = BodyReader(request, limit, self.ctx.write.idle_timeout)

        def work() -> Response:
            p = self.ctx.principal(authz, call)
            return fn(p, reader, base)

        return await anyio.to_thread.run_sync(work)

    async def _run_anon_stream(self, request: Request, call: WriteCall,
                               fn: Callable[[BodyReader], Response], limit: int) -> Response:
        reader = BodyReader(request, limit, self.ctx.write.idle_timeout)
        return await anyio.to_thread.run_sync(lambda: fn(reader))
