"""Console security: token login exchanged for a session cookie, CSRF tokens, headers.

* Login takes a registry token once and answers with a random session id in a cookie that
  is HttpOnly, SameSite=Strict, scoped to ``/ui`` and Secure whenever the console is
  reached over TLS (directly, through ``--public-url https://...`` or a proxy's
  ``X-Forwarded-Proto``). Only a hash of the id is stored; each request re-checks the
  token behind the session, so revoking the token ends the session at once.
* Every state-changing form carries a per-session CSRF token, compared in constant time;
  a POST without it (or from another origin) is refused with 403. The login form, which
  has no session yet, uses a double-submit cookie.
* Every response carries a strict Content-Security-Policy (no inline script or style, no
  other origin for anything), and pages that show data are never cached.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlwarden.store.push import Session
from mlwarden.store.tokens import TokenInfo

COOKIE = "mlw_console"
LOGIN_COOKIE = "mlw_login"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


class SecurityHeaders:
    """Adds the headers above to every console response; ``no-store`` unless static."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/ui/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not static:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, wrapped)


def is_tls(request: Request, public_url: str | None) -> bool:
    if request.url.scheme == "https" or (public_url or "").startswith("https://"):
        return True
    return request.headers.get("x-forwarded-proto", "").lower() == "https"


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None) -> str:
    parts = [f"{name}={value}", "Path=/ui", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def same_origin(request: Request, public_url: str | None) -> bool:
    """A browser POST names its origin; it must be this console's."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None  # no header: not a browser cross-site form post
    got = urlsplit(origin)
    host = request.headers.get("host", "")
    allowed = {host}
    if public_url:
        allowed.add(urlsplit(public_url).netloc)
    return got.netloc in allowed


def check_csrf(form: Mapping[str, object], expected: str) -> bool:
    got = form.get("csrf")
    return isinstance(got, str) and bool(expected) and hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the session's token and the identity it acts for."""

    session_id: str
    session: Session
    token: TokenInfo
    identity: str

    @property
    def actor(self) -> str:
        return f"console:{self.identity} (token:{self.token.name}/{self.token.id})"

    @property
    def csrf(self) -> str:
        return self.session.csrf

    @property
    def is_admin(self) -> bool:
        return self.token.is_admin

    def can(self, repo: str, access: str) -> bool:
        return self.token.can(repo, access)

    @property
    def reviewer(self) -> bool:
        return self.token.can_anywhere("approve")
