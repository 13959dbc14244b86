"""The review console's routes (Starlette, server-rendered with Jinja2, under ``/ui``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from mlwarden.registry.api.context import WriteContext
from mlwarden.registry.console import data as D
from mlwarden.registry.console.security import (
    COOKIE,
    LOGIN_COOKIE,
    SecurityHeaders,
    Viewer,
    check_csrf,
    cookie_header,
    is_tls,
    new_login_nonce,
    same_origin,
)
from mlwarden.registry.review import review_state
from mlwarden.store import AuditEntry, StoreError
from mlwarden.store.errors import InvalidName, RepoNotFound, RevisionNotFound
from mlwarden.store.names import check_repo_id, is_commit_id

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}
MESSAGES = {  # fixed texts for redirects: nothing from the query string is ever echoed
    "approved": "Approved: the commit is now served.",
    "voted": "Approval recorded: the commit needs another reviewer before it is served.",
    "refused": "Refused: the commit will never be served.",
    "revoked": "Token revoked.",
    "logged-out": "Signed out.",
}


class Forbidden(Exception):
    pass


class NotFound(Exception):
    pass


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,  # every template, every value: escaped unless marked safe
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(when=D.when, vclass=D.verdict_class, quote=quote)
    return env


class Console:
    def __init__(self, ctx: WriteContext) -> None:
        self.ctx = ctx
        self.env = _env()

    # ------------------------------------------------------------------ plumbing

    def html(self, name: str, status: int = 200, **kw: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**kw), status_code=status)

    def viewer(self, request: Request) -> Viewer | None:
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > 100:
            return None
        s = self.ctx.push.session(sid, self.ctx.write.session_idle)
        if s is None:
            return None
        token = next((t for t in self.ctx.store.tokens() if t.id == s.token_id), None)
        if token is None or not token.active(time.time()):
            self.ctx.push.end_session(sid)
            return None
        return Viewer(sid, s, token, self.ctx.push.owner(token.id, token.name))

    def audit(self, request: Request, actor: str, action: str, status: int,
              repo: str | None = None, commit: str | None = None, detail: str = "") -> None:
        client = request.client.host if request.client else "-"
        self.ctx.audit.log(AuditEntry(time.time(), actor, client, request.method, action, repo,
                                      None, commit, None, status, 0, detail))

    def page(self, fn: Callable[[Request, Viewer], Response],
             post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Session required (else the login page); POSTs need the CSRF token."""

        async def endpoint(request: Request) -> Response:
            form: dict[str, Any] = {}
            if post:
                form = dict(await request.form(max_files=0, max_fields=50))
            v = await anyio.to_thread.run_sync(self.viewer, request)
            if v is None:
                if post:
                    return self.html("error.html", 403, viewer=None, title="Signed out",
                                     message="Your session has ended: sign in again.")
                target = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
                return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
            if post and (not check_csrf(form, v.csrf) or
                         not same_origin(request, self.ctx.write.public_url)):
                self.audit(request, v.actor, "console-csrf", 403, detail=request.url.path)
                return self.html("error.html", 403, viewer=v, title="Forbidden",
                                 message="The form's CSRF token is missing or wrong (or it "
                                         "came from another site). Reload the page and retry.")
            request.state.form = form

            def run() -> Response:
                try:
                    return fn(request, v)
                except Forbidden as exc:
                    return self.html("error.html", 403, viewer=v, title="Forbidden",
                                     message=str(exc) or "Your token does not allow this.")
                except (NotFound, RepoNotFound, RevisionNotFound, InvalidName):
                    return self.html("error.html", 404, viewer=v, title="Not found",
                                     message="No such repository, commit or page (or your "
                                             "token cannot see it).")
                except StoreError as exc:
                    return self.html("error.html", 503, viewer=v, title="Store error",
                                     message=str(exc))

            return await anyio.to_thread.run_sync(run)

        return endpoint

    def repo_for(self, request: Request, v: Viewer, access: str = "read") -> str:
        repo = f"{request.path_params['org']}/{request.path_params['name']}"
        try:
            check_repo_id(repo)
        except InvalidName:
            raise NotFound() from None
        if not v.can(repo, "read") or self.ctx.store.repo(repo) is None:
            raise NotFound()
        if access != "read" and not v.can(repo, access):
            raise Forbidden(f"your token has no {access} access to {repo}")
        return repo

    # ------------------------------------------------------------------ login

    async def login_form(self, request: Request) -> Response:
        nonce = new_login_nonce()
        nxt = request.query_params.get("next", "/ui/")
        resp = self.html("login.html", viewer=None, nonce=nonce, next=_safe_next(nxt),
                         error=None, message=MESSAGES.get(request.query_params.get("msg", "")))
        resp.headers.append("set-cookie", cookie_header(
            LOGIN_COOKIE, nonce, secure=is_tls(request, self.ctx.write.public_url),
            max_age=600))
        return resp

    async def login(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=10)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        nxt = _safe_next(str(form.get("next") or "/ui/"))
        secure = is_tls(request, self.ctx.write.public_url)
        if not nonce or not check_csrf(form, nonce) or \
                not same_origin(request, self.ctx.write.public_url):
            return self.html("error.html", 403, viewer=None, title="Forbidden",
                             message="The sign-in form expired or came from another site. "
                                     "Reload it and retry.")
        text = str(form.get("token") or "").strip()

        def check() -> tuple[Any, str] | str:
            info = self.ctx.store.verify_token(text) if text.startswith("mlw_") else None
            if info is None:
                return "That token is not valid (unknown, expired or revoked)."
            if not any(info.can_anywhere(a) for a in ("write", "approve", "admin")):
                return ("That token can only read models. The console is for tokens with "
                        "write, approve or admin scopes.")
            sid, _ = self.ctx.push.create_session(info.id, self.ctx.write.session_lifetime)
            return info, sid

        got = await anyio.to_thread.run_sync(check)
        resp: Response
        if isinstance(got, str):
            self.audit(request, "anonymous", "denied", 401, detail=f"console login: {got}")
            new = new_login_nonce()
            resp = self.html("login.html", 401, viewer=None, nonce=new, next=nxt, error=got,
                             message=None)
            resp.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, new, secure=secure,
                                                            max_age=600))
            return resp
        info, sid = got
        self.audit(request, f"token:{info.name}/{info.id}", "console-login", 200)
        resp = RedirectResponse(nxt, 303)
        resp.headers.append("set-cookie", cookie_header(
            COOKIE, sid, secure=secure, max_age=int(self.ctx.write.session_lifetime)))
        resp.headers.append("set-cookie", cookie_header(LOGIN_COOKIE, "", secure=secure,
                                                        max_age=0))
        return resp

    def logout(self, request: Request, v: Viewer) -> Response:
        self.ctx.push.end_session(v.session_id)
        self.audit(request, v.actor, "console-logout", 200)
        resp = RedirectResponse("/ui/login?msg=logged-out", 303)
        resp.headers.append("set-cookie", cookie_header(
            COOKIE, "", secure=is_tls(request, self.ctx.write.public_url), max_age=0))
        return resp

    # ------------------------------------------------------------------ pages

    def visible(self, v: Viewer) -> list[Any]:
        return [r for r in self.ctx.store.repos() if v.can(r.id, "read")]

    def dashboard(self, request: Request, v: Viewer) -> Response:
        ctx = self.ctx
        repos = {r.id for r in self.visible(v)}
        rows = ctx.store.db.read("SELECT repo, id FROM commits WHERE approved = 0 "
                                 "ORDER BY created_at DESC LIMIT 500")
        pending = []
        for repo, cid in rows:
            if repo not in repos:
                continue
            st = review_state(ctx.push, repo, cid, ctx.write.policy)
            if st.state == "pending":
                pending.append(D.commit_row(ctx, st))
        refusals = [r for r in ctx.push.refusals(50) if r.repo in repos][:20]
        refused_reviews = []
        for repo, cid, _actor, ident, note, at in ctx.store.db.read(
                "SELECT repo, commit_id, actor, identity, note, at FROM review_votes WHERE "
                "decision = 'refuse' ORDER BY at DESC LIMIT 50"):
            if repo in repos:
                refused_reviews.append({"repo": repo, "commit": cid, "identity": ident,
                                        "note": note, "at": at})
        denials = []
        if v.reviewer or v.is_admin:
            denials = [e for e in ctx.store.audit(action="denied", limit=200)
                       if v.is_admin or (e.repo and e.repo in repos)][::-1][:20]
        return self.html("dashboard.html", viewer=v, pending=pending, refusals=refusals,
                         refused_reviews=refused_reviews[:20], denials=denials,
                         repo_count=len(repos), message=_message(request))

    def repos(self, request: Request, v: Viewer) -> Response:
        q = request.query_params.get("q", "").strip()[:200]
        repos = [r for r in self.visible(v) if q.lower() in r.id.lower()]
        return self.html("repos.html", viewer=v, q=q, rows=D.repo_rows(self.ctx, repos[:500]),
                         total=len(repos))

    def repo(self, request: Request, v: Viewer) -> Response:
        ctx = self.ctx
        repo = self.repo_for(request, v)
        info = ctx.store.repo(repo)
        assert info is not None
        commits = D.repo_commits(ctx, repo)
        rev = request.query_params.get("rev")
        shown = None
        if rev and is_commit_id(rev):
            shown = ctx.store.commit(repo, rev)
        else:
            try:
                shown = ctx.store.resolve(repo, info.default_branch)
            except RevisionNotFound:
                shown = commits[0].commit if commits else None
        files: list[Any] = []
        card = None
        report = None
        if shown is not None:
            report = D.ensure_report(ctx, repo, shown.id)
            files = [(f, D.file_verdict(report, f.path)) for f in ctx.store.files(repo, shown.id)]
            card = D.model_card(ctx, repo, shown)
        prs = ctx.push.prs(repo)
        return self.html("repo.html", viewer=v, repo=repo, info=info, commits=commits,
                         refs=D.repo_refs(ctx, repo), shown=shown, files=files, card=card,
                         prs=prs, verdict=report.get("verdict") if report else None)

    def commit(self, request: Request, v: Viewer, error: str | None = None,
               status: int = 200) -> Response:
        ctx = self.ctx
        repo = self.repo_for(request, v)
        cid = request.path_params["commit"]
        if not is_commit_id(cid):
            raise NotFound()
        commit = ctx.store.commit(repo, cid)
        st = review_state(ctx.push, repo, cid, ctx.write.policy)
        report = D.ensure_report(ctx, repo, cid)
        base = D.last_approved(ctx, st)
        base_report = D.ensure_report(ctx, repo, base.id) if base else None
        changes = D.file_changes(ctx, repo, commit, base, report, base_report)
        counts = {k: sum(1 for c in changes if c.change == k)
                  for k in ("added", "changed", "removed", "unchanged")}
        can_review = v.can(repo, "approve")
        self_blocked = st.forbid_self and v.identity == st.author
        return self.html(
            "commit.html", status, viewer=v, repo=repo, commit=commit, st=st, report=report,
            groups=D.findings_by_severity(report), base=base, changes=changes, counts=counts,
            code=D.remote_code(ctx, repo, commit, report), can_review=can_review,
            self_blocked=self_blocked, error=error, message=_message(request),
            votes=ctx.push.votes(repo, cid), pr=ctx.push.pr(repo, st.push.pr_num)
            if st.push and st.push.pr_num else None)

    def review(self, request: Request, v: Viewer) -> Response:
        from mlwarden.registry import review as R

        repo = self.repo_for(request, v, "approve")
        cid = request.path_params["commit"]
        if not is_commit_id(cid):
            raise NotFound()
        form = request.state.form
        decision = form.get("decision")
        note = str(form.get("note") or "").strip()[:4000]
        try:
            if decision == "approve":
                st = R.approve(self.ctx.push, repo, cid, actor=v.actor, identity=v.identity,
                               note=note, policy=self.ctx.write.policy)
                msg = "approved" if st.state == "approved" else "voted"
            elif decision == "refuse":
                R.refuse(self.ctx.push, repo, cid, actor=v.actor, identity=v.identity,
                         note=note, policy=self.ctx.write.policy)
                msg = "refused"
            else:
                return self.commit(request, v, "Choose approve or refuse.", 400)
        except R.ReviewError as exc:
            return self.commit(request, v, str(exc), 409)
        return RedirectResponse(f"/ui/repos/{repo}/commits/{cid}?msg={msg}", 303)

    def audit_page(self, request: Request, v: Viewer) -> Response:
        if not (v.reviewer or v.is_admin):
            raise Forbidden("the audit log is for reviewers and administrators")
        qp = request.query_params
        f = {k: qp.get(k, "").strip()[:200] for k in ("repo", "action", "actor", "status",
                                                       "since")}
        since = None
        if f["since"]:
            since = _parse_since(f["since"])
        limit = min(int(qp.get("limit", "200")) if qp.get("limit", "").isdigit() else 200, 2000)
        repos = {r.id for r in self.visible(v)}
        entries = self.ctx.store.audit(f["repo"] or None, since, f["action"] or None)
        rows = [e for e in entries if (v.is_admin or (e.repo and e.repo in repos))
                and (not f["actor"] or f["actor"] in e.actor)
                and (not f["status"] or str(e.status) == f["status"])]
        actions = sorted({e.action for e in entries})
        return self.html("audit.html", viewer=v, f=f, rows=rows[::-1][:limit],
                         total=len(rows), actions=actions)

    def log_page(self, request: Request, v: Viewer) -> Response:
        if not (v.reviewer or v.is_admin):
            raise Forbidden("the approval log is for reviewers and administrators")
        from mlwarden.approvals import ApprovalLogError, cross_check, read_log, verify_log

        try:
            result = verify_log(self.ctx.store)
            entries = read_log(self.ctx.store)
            problems, warnings = cross_check(self.ctx.store, entries)
            error = None
        except (ApprovalLogError, OSError) as exc:
            result, entries, problems, warnings, error = None, [], [], [], str(exc)
        return self.html("log.html", viewer=v, result=result, entries=entries[::-1][:100],
                         count=len(entries), problems=problems, warnings=warnings, error=error)

    def tokens(self, request: Request, v: Viewer, created: str | None = None,
               error: str | None = None, status: int = 200) -> Response:
        if not v.is_admin:
            raise Forbidden("token management is for administrators (*:admin)")
        now = time.time()
        owners = self.ctx.push.owners()
        rows = [(t, owners.get(t.id, t.name), "active" if t.active(now) else
                 ("revoked" if t.revoked_at else "expired")) for t in self.ctx.store.tokens()]
        return self.html("tokens.html", status, viewer=v, rows=rows[::-1], created=created,
                         error=error, message=_message(request))

    def token_create(self, request: Request, v: Viewer) -> Response:
        if not v.is_admin:
            raise Forbidden("token management is for administrators (*:admin)")
        form = request.state.form
        name = str(form.get("name") or "").strip()
        owner = str(form.get("owner") or "").strip() or name
        scopes = str(form.get("scopes") or "").split()
        days = str(form.get("days") or "").strip()
        try:
            expires = time.time() + int(days) * 86400 if days else None
            info, text = self.ctx.store.create_token(name, scopes, expires)
            self.ctx.push.set_owner(info.id, owner)
        except (StoreError, ValueError) as exc:
            return self.tokens(request, v, error=str(exc), status=400)
        self.audit(request, v.actor, "token-create", 200,
                   detail=f"{info.name}/{info.id} for {owner}: {' '.join(scopes)}")
        return self.tokens(request, v, created=text)

    def token_revoke(self, request: Request, v: Viewer) -> Response:
        if not v.is_admin:
            raise Forbidden("token management is for administrators (*:admin)")
        tid = request.path_params["token"]
        if not any(t.id == tid for t in self.ctx.store.tokens()):
            raise NotFound()
        self.ctx.store.revoke_token(tid)
        self.audit(request, v.actor, "token-revoke", 200, detail=tid)
        return RedirectResponse("/ui/tokens?msg=revoked", 303)

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in STATIC:
            return Response("not found", 404, media_type="text/plain")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                        headers={"cache-control": "public, max-age=3600"})


def _safe_next(nxt: str) -> str:
    """Only redirect inside the console (no //host, no scheme)."""
    if nxt.startswith("/ui") and not nxt.startswith("//") and "\\" not in nxt and \
            all(ord(c) > 0x20 for c in nxt):
        return nxt
    return "/ui/"


def _message(request: Request) -> str | None:
    return MESSAGES.get(request.query_params.get("msg", ""))


def _parse_since(text: str) -> float | None:
    import datetime as dt
    import re

    m = re.fullmatch(r"(\d+)([smhdw])", text)
    if m:
        return time.time() - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400,
                                                "w": 604800}[m.group(2)]
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def create_console(ctx: WriteContext) -> ASGIApp:
    c = Console(ctx)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", 307)

    routes = [
        Route("/ui", root),
        Route("/ui/", c.page(c.dashboard)),
        Route("/ui/login", c.login_form, methods=["GET"]),
        Route("/ui/login", c.login, methods=["POST"]),
        Route("/ui/logout", c.page(c.logout, post=True), methods=["POST"]),
        Route("/ui/repos", c.page(c.repos)),
        Route("/ui/repos/{org}/{name}", c.page(c.repo)),
        Route("/ui/repos/{org}/{name}/commits/{commit}", c.page(c.commit)),
        Route("/ui/repos/{org}/{name}/commits/{commit}/review", c.page(c.review, post=True),
              methods=["POST"]),
        Route("/ui/audit", c.page(c.audit_page)),
        Route("/ui/log", c.page(c.log_page)),
        Route("/ui/tokens", c.page(c.tokens)),
        Route("/ui/tokens", c.page(c.token_create, post=True), methods=["POST"]),
        Route("/ui/tokens/{token}/revoke", c.page(c.token_revoke, post=True), methods=["POST"]),
        Route("/ui/static/{file}", c.static),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse("<!doctype html><title>Not found</title><p>Not found.</p>", 404)

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    return SecurityHeaders(app)
