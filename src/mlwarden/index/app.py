"""The index's ASGI application (Starlette), served by the registry's hardened uvicorn setup.

Routes (all relative, so a proxy may mount the app under a prefix):

- ``GET /simple/`` and ``GET /simple/<project>/``: the simple API, content-negotiated;
- ``GET|HEAD /packages/<project>/<filename>[.metadata]``: files and PEP 658 metadata; the
  first download of a pull-through candidate admits it (or refuses it) before any byte goes
  out;
- ``POST /legacy/`` (also ``POST /``): the legacy upload API twine speaks.

Credentials: ``Authorization: Basic`` (pip, uv and twine send ``__token__:<token>``) or
``Bearer``. Reads need a ``pkg:PATTERN:read`` token unless anonymous reads are allowed;
uploads always need ``pkg:PATTERN:write``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mlwarden.index import simple
from mlwarden.index.names import NameError_, canonical, is_valid_name
from mlwarden.index.service import INDEX_ACTOR, IndexError_, IndexService
from mlwarden.registry.audit import AuditWriter
from mlwarden.registry.responses import BlobResponse
from mlwarden.store.errors import StoreError
from mlwarden.store.tokens import TokenInfo


@dataclass(frozen=True)
class IndexSettings:
    allow_anonymous: bool = False
    max_upload_bytes: int = 1 << 30
    max_target_bytes: int = 8192


@dataclass
class Who:
    actor: str
    token: TokenInfo | None
    client: str
    agent: str


class Denied(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def installer(user_agent: str) -> str:
    """pip and uv describe themselves in JSON after the product token; keep the gist."""
    head, _, rest = user_agent.partition(" ")
    try:
        doc = json.loads(rest) if rest.startswith("{") else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return user_agent[:120]
    inst = doc.get("installer") or {}
    impl = doc.get("implementation") or {}
    dist = (doc.get("distro") or {}).get("name") or (doc.get("system") or {}).get("name")
    parts = [f"{inst.get('name', head)}/{inst.get('version', '?')}",
             f"{impl.get('name', '')} {impl.get('version', '')}".strip(), str(dist or "")]
    if doc.get("ci"):
        parts.append("ci")
    return " ".join(p for p in parts if p)[:160]


def create_index_app(service: IndexService, settings: IndexSettings | None = None,
                     audit: AuditWriter | None = None) -> Starlette:
    settings = settings or IndexSettings()
    writer = audit or AuditWriter(service.store)
    service._audit = writer.log
    store = service.store

    def authenticate(request: Request) -> Who:
        client = request.client.host if request.client else "-"
        agent = installer(request.headers.get("user-agent", ""))
        authz = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Basic realm="mlwarden-index"'}
        if not authz:
            if settings.allow_anonymous:
                return Who("anonymous", None, client, agent)
            raise Denied(401, "authentication required: use a token from "
                              "`mlwarden token create --scope 'pkg:*:read'`", challenge)
        scheme, _, cred = authz.partition(" ")
        secret = cred.strip()
        if scheme.lower() == "basic":
            try:
                _, _, secret = base64.b64decode(secret, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise Denied(401, "malformed Basic credentials", challenge) from None
        elif scheme.lower() != "bearer":
            raise Denied(401, "unsupported Authorization scheme", challenge)
        info = store.verify_token(secret) if secret.startswith("mlw_") else None
        if info is None:
            raise Denied(401, "invalid, expired or revoked token", challenge)
        return Who(f"token:{info.name}/{info.id}", info, client, agent)

    def can_read(who: Who, project: str) -> bool:
        if who.token is None:
            return settings.allow_anonymous
        return who.token.can_package(project, "read") or settings.allow_anonymous

    def log(who: Who, request: Request, action: str, project: str | None, status: int, *,
            version: str | None = None, filename: str | None = None, sha: str | None = None,
            nbytes: int = 0, detail: str = "") -> None:
        service.audit(action, project, actor=who.actor, client=who.client,
                      method=request.method, version=version, filename=filename, sha256=sha,
                      status=status, nbytes=nbytes,
                      detail="; ".join(x for x in (detail, who.agent) if x))

    def page(request: Request, who: Who, project: str, fmt: str) -> Response:
        if not can_read(who, project):
            raise Denied(404, "not found")
        listing = service.listing(project)
        if listing.denied is not None:
            log(who, request, "pkg-denied", project, 404, detail=listing.denied.reasons)
            raise Denied(404, f"{project} is refused by the index policy: "
                              f"{listing.denied.reasons}")
        if listing.empty and not listing.internal and listing.upstream_error is None:
            log(who, request, "pkg-page", project, 404)
            raise Denied(404, f"no project {project}")
        if listing.empty and listing.internal:
            log(who, request, "pkg-page", project, 404, detail="internal name, nothing uploaded")
            raise Denied(404, f"no project {project} (internal namespace)")
        items = simple.links(listing.files, listing.candidates)
        body = (simple.project_json(project, items, listing.versions) if fmt == simple.JSON
                else simple.project_html(project, items))
        log(who, request, "pkg-page", project, 200,
            detail=listing.upstream_error or ("internal" if listing.internal else ""))
        return Response(body, media_type=fmt, headers={"Vary": "Accept",
                                                       "Cache-Control": "max-age=0"})

    def root(request: Request, who: Who, fmt: str) -> Response:
        projects = [p for p in service.storage.projects() if can_read(who, p)]
        body = simple.index_json(projects) if fmt == simple.JSON else simple.index_html(projects)
        return Response(body, media_type=fmt, headers={"Vary": "Accept"})

    def download(request: Request, who: Who, project: str, filename: str) -> Response:
        if not can_read(who, project):
            raise Denied(404, "not found")
        metadata = filename.endswith(".metadata")
        fname = filename.removesuffix(".metadata") if metadata else filename
        try:
            f = service.file_for_download(project, fname)
        except IndexError_ as exc:
            action = "pkg-denied" if exc.status == 403 else "pkg-download"
            log(who, request, action, project, exc.status, filename=fname, detail=exc.message)
            raise Denied(exc.status, exc.message) from None
        head = request.method == "HEAD"
        if metadata:
            if not f.metadata_sha256 or f.kind != "wheel":
                raise Denied(404, f"no core metadata for {fname}")
            sha, name = f.metadata_sha256, fname + ".metadata"
            size = service.storage.blob_size(sha)
        else:
            sha, name, size = f.sha256 or "", fname, f.size or 0
        started = time.time()
        action = "pkg-metadata" if metadata else "pkg-download"

        def done(status: int, sent: int) -> None:
            service.audit(action, project, actor=who.actor, client=who.client,
                          method=request.method, version=f.version, filename=name,
                          sha256=sha, status=status, nbytes=sent,
                          detail=f"{who.agent}; {time.time() - started:.3f}s".lstrip("; "))

        from mlwarden.registry.responses import parse_range

        byte_range = parse_range(request.headers.get("range"), size)
        headers = {"ETag": f'"{sha}"', "Content-Type": "application/octet-stream",
                   "Cache-Control": "max-age=600"}
        return BlobResponse(store.blobs, sha, size, headers, head, byte_range, done)

    async def upload(request: Request, who: Who) -> Response:
        if who.token is None:
            raise Denied(401, "uploads need a token with pkg:PATTERN:write",
                         {"WWW-Authenticate": 'Basic realm="mlwarden-index"'})
        length = request.headers.get("content-length")
        if length is None:  # the form parser spools to disk: its size must be known first
            raise Denied(411, "uploads need a Content-Length")
        if not length.isdigit() or int(length) > settings.max_upload_bytes + (1 << 20):
            raise Denied(413, f"upload larger than {settings.max_upload_bytes} bytes")
        try:
            form = await request.form(max_files=1, max_fields=200)
        except Exception as exc:  # malformed multipart bodies raise several types
            raise Denied(400, f"malformed upload form: {exc}") from None
        try:
            if form.get(":action") != "file_upload":
                raise Denied(400, "unsupported :action (only file_upload)")
            content = form.get("content")
            name = form.get("name")
            if content is None or isinstance(content, str) or not isinstance(name, str):
                raise Denied(400, "an upload needs name and a content file")
            if not is_valid_name(name):
                raise Denied(400, f"invalid project name {name!r}")
            project = canonical(name)
            filename = Path(content.filename or "").name
            if not who.token.can_package(project, "write"):
                log(who, request, "denied", project, 403, filename=filename,
                    detail="token has no write scope for this project")
                raise Denied(403, f"this token may not upload {project} "
                                  f"(needs pkg:{project}:write or a matching pattern)")
            sha = form.get("sha256_digest")
            with service.storage.quarantine() as q:
                tmp = q / "upload"
                total = 0
                with open(tmp, "wb") as out:
                    while True:
                        chunk = await content.read(1 << 20)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > settings.max_upload_bytes:
                            raise Denied(413, "upload too large")
                        out.write(chunk)

                def add() -> Any:
                    return service.add_internal(
                        tmp, actor=who.actor, client=who.client, filename=filename,
                        expected_sha256=sha if isinstance(sha, str) and sha else None)

                try:
                    f = await anyio.to_thread.run_sync(add)
                except IndexError_ as exc:
                    raise Denied(exc.status, exc.message) from None
        finally:
            await form.close()
        if f.project != project:
            raise Denied(400, f"{filename} is not a file of {project}")
        if f.state.value == "admitted":
            return PlainTextResponse(f"admitted {f.filename}\n")
        if f.state.value == "held":
            return PlainTextResponse(f"held for review: {f.filename}\n", status_code=202)
        reasons = "; ".join(x.message for x in f.findings if x.severity.value != "info")
        raise Denied(403, f"refused {f.filename}: {reasons}")

    async def endpoint(request: Request) -> Response:
        raw = request.scope["raw_path"]
        if len(raw) + len(request.scope["query_string"]) > settings.max_target_bytes:
            return PlainTextResponse("request target too long\n", status_code=414)
        try:
            segs = [unquote(s, errors="strict") for s in raw.decode("ascii").split("/")]
        except UnicodeDecodeError:
            return PlainTextResponse("bad request path\n", status_code=400)
        if any(s in (".", "..") or "\x00" in s for s in segs):
            return PlainTextResponse("bad request path\n", status_code=400)
        segs = segs[1:]
        if segs == ["healthz"]:
            return PlainTextResponse("ok\n")
        who: Who | None = None
        try:
            who = await anyio.to_thread.run_sync(authenticate, request)
            method = request.method
            if method == "POST":
                if segs in (["legacy", ""], ["legacy"], [""]):
                    return await upload(request, who)
                raise Denied(405, "method not allowed")
            if segs and segs[0] == "simple":
                query = parse_qs(request.scope["query_string"].decode("latin-1"))
                fmt = simple.negotiate(request.headers.get("accept"),
                                       (query.get("format") or [None])[-1])
                if fmt is None:
                    raise Denied(406, "acceptable types: " + ", ".join(
                        (simple.JSON, simple.HTML_V1, simple.TEXT_HTML)))
                if segs in (["simple", ""], ["simple"]):
                    if segs == ["simple"]:
                        return RedirectResponse("simple/", 301)
                    return await anyio.to_thread.run_sync(root, request, who, fmt)
                if len(segs) in (2, 3) and (len(segs) == 2 or segs[2] == ""):
                    name = segs[1]
                    if not is_valid_name(name):
                        raise Denied(404, "not found")
                    canon = canonical(name)
                    if canon != name or len(segs) == 2:
                        return RedirectResponse(f"../{canon}/" if len(segs) == 3
                                                else f"{canon}/", 301)
                    return await anyio.to_thread.run_sync(page, request, who, canon, fmt)
                raise Denied(404, "not found")
            if len(segs) == 3 and segs[0] == "packages" and is_valid_name(segs[1]):
                return await anyio.to_thread.run_sync(download, request, who,
                                                      canonical(segs[1]), segs[2])
            if segs == [""]:
                return RedirectResponse("simple/", 302)
            raise Denied(404, "not found")
        except Denied as exc:
            if exc.status == 401 and who is None:
                service.audit("denied", None, actor="anonymous",
                              client=request.client.host if request.client else "-",
                              method=request.method, status=401,
                              filename="/".join(segs)[:300], detail=exc.message)
            return PlainTextResponse(exc.message + "\n", status_code=exc.status,
                                     headers=exc.headers)
        except NameError_ as exc:
            return PlainTextResponse(f"{exc}\n", status_code=404)
        except StoreError as exc:
            service.audit("pkg-error", None, actor=who.actor if who else INDEX_ACTOR,
                          status=503, detail=f"store error: {exc}")
            return PlainTextResponse("store unavailable\n", status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(writer.close)

    app = Starlette(routes=[Route("/{rest:path}", endpoint,
                                  methods=["GET", "HEAD", "POST"])], lifespan=lifespan)
    app.state.service = service
    app.state.audit = writer
    return app
