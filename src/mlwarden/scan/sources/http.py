"""A small keep-alive HTTP client for the Hub's metadata and range reads.

A one-shot ``mlwarden scan hf://...`` issues about ten small requests. Through
huggingface_hub's session they cost ~0.13 s of set-up per process before the first byte
(importing httpx and huggingface_hub's auth stack, building an SSL context from certifi's
bundle): more than a whole local scan. This client is ``http.client`` with one keep-alive
connection per origin and thread, the environment's proxies (``http_proxy``,
``https_proxy``, ``no_proxy``, as urllib reads them), and TLS through Python's default
context (system CAs, ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made on the first https request.

Redirects are not followed here: the callers follow them, so that a token never leaves the
endpoint's origin. Endpoint and token are still huggingface_hub's (see :func:`hf_headers`).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

MAX_BODY = 256 << 20  # a repository listing of 200,000 files is ~60 MB
TIMEOUT = 60.0


@dataclass(frozen=True)
class Response:
    status_code: int
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


class HttpStatusError(Exception):
    """A non-2xx answer; ``response`` lets polite.classify see status and Retry-After."""

    def __init__(self, response: Response, url: str = "") -> None:
        super().__init__(response.status_code, url)
        self.response = response
        self.url = url

    def __str__(self) -> str:
        msg = self.response.headers.get("x-error-message") or \
            self.response.body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {self.response.status_code} from {self.url}" + (f": {msg}" if msg else "")


class ConnectError(ConnectionError):
    """The connection failed or broke (transient for polite_call)."""


_local = threading.local()
_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _forget_in_child() -> None:
    # A forked child must not use (or shut down) the parent's connections.
    _local.pool = {}


os.register_at_fork(after_in_child=_forget_in_child)


def _context() -> ssl.SSLContext:
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


def _proxy_for(scheme: str, host: str) -> str | None:
    import urllib.request

    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _connection(scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
    key = (scheme, host, port)
    pool: dict[tuple[str, str, int | None], http.client.HTTPConnection] = \
        getattr(_local, "pool", None) or {}
    _local.pool = pool
    conn = pool.get(key)
    if conn is not None:
        return conn
    proxy = _proxy_for(scheme, host)
    headers: dict[str, str] = {}
    if proxy:
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.username:
            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
        conn_host, conn_port = p.hostname or "", p.port
        if scheme == "https":
            conn = http.client.HTTPSConnection(conn_host, conn_port, timeout=TIMEOUT,
                                               context=_context())
            conn.set_tunnel(host, port, headers=headers)
        else:
            conn = http.client.HTTPConnection(conn_host, conn_port, timeout=TIMEOUT)
            conn._mlwarden_proxy_headers = headers  # type: ignore[attr-defined]
            conn._mlwarden_via_proxy = True  # type: ignore[attr-defined]
    elif scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    pool[key] = conn
    return conn


def _drop(scheme: str, host: str, port: int | None) -> None:
    pool = getattr(_local, "pool", None) or {}
    conn = pool.pop((scheme, host, port), None)
    if conn is not None:
        conn.close()


def close_all() -> None:
    """Close this thread's connections (a forked child must not share its parent's)."""
    pool = getattr(_local, "pool", None) or {}
    for conn in pool.values():
        conn.close()
    pool.clear()


def request(method: str, url: str, headers: dict[str, str] | None = None,
            want: int | None = None, params: dict[str, str] | None = None) -> Response:
    """One request, redirects not followed. The body is read only for 2xx answers (and a
    short excerpt of errors), at most ``want`` bytes (all, up to MAX_BODY, if None); a
    body cut short closes the connection instead of returning it to the pool."""
    from urllib.parse import urlencode

    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if params:
        path += ("&" if u.query else "?") + urlencode(params)
    host = u.hostname
    hdrs = {"Accept-Encoding": "identity", **(headers or {})}
    for attempt in (0, 1):  # a kept-alive connection the server closed: retry once, fresh
        conn = _connection(u.scheme, host, u.port)
        target = path
        if getattr(conn, "_mlwarden_via_proxy", False):
            target = f"{u.scheme}://{u.netloc.rpartition('@')[2]}{path}"
            hdrs.update(getattr(conn, "_mlwarden_proxy_headers", {}))
        reused = conn.sock is not None
        try:
            conn.request(method, target, headers=hdrs)
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            _drop(u.scheme, host, u.port)
            if reused and attempt == 0:
                continue
            raise ConnectError(f"{url}: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            _drop(u.scheme, host, u.port)
            if isinstance(exc, TimeoutError):
                raise
            raise ConnectError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            status = resp.status
            rh = {k.lower(): v for k, v in resp.getheaders()}
            limit = (MAX_BODY if want is None else want) if 200 <= status < 300 else 4096
            length = resp.length  # None: chunked or until close
            body = resp.read(limit + 1) if length is None or length > limit else resp.read()
            if len(body) > limit:
                if want is None and 200 <= status < 300:
                    raise ConnectError(f"{url}: response larger than {MAX_BODY} bytes")
                body = body[:limit]
            if not resp.isclosed() or resp.will_close:  # unread rest, or closing
                _drop(u.scheme, host, u.port)
        except (OSError, http.client.HTTPException) as exc:
            _drop(u.scheme, host, u.port)
            raise ConnectError(f"{url}: reading the response: {exc}") from None
        return Response(status, rh, body)
    raise ConnectError(f"{url}: connection closed")  # pragma: no cover - loop returns


def get_json(url: str, headers: dict[str, str], params: dict[str, str] | None = None) -> Any:
    r = request("GET", url, {**headers, "Accept": "application/json"}, params=params)
    if not 200 <= r.status_code < 300:
        raise HttpStatusError(r, url)
    try:
        return r.json()
    except ValueError as exc:
        raise ConnectError(f"{url}: not JSON ({exc})") from None


# ----------------------------------------------------------------------------- hub headers


def _may_have_token() -> bool:
    """False only when huggingface_hub's get_token() would certainly find no token: no
    OIDC resource, no token variable, no token file, not in Colab."""
    from huggingface_hub import constants

    if os.environ.get("HF_OIDC_RESOURCE"):
        return True
    if (os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or "").strip():
        return True
    if os.path.exists(constants.HF_TOKEN_PATH):
        return True
    try:
        import importlib.util

        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def hf_headers() -> dict[str, str]:
    """huggingface_hub's request headers (``build_hf_headers()``): the same token, found
    the same way (HF_TOKEN, the stored token, OIDC, Colab; none under
    HF_HUB_DISABLE_IMPLICIT_TOKEN). Its auth stack is imported only when a token may
    exist; otherwise the headers are built here, without a token, as it would build them."""
    from huggingface_hub import __version__ as hub_version
    from huggingface_hub import constants

    if not constants.HF_HUB_DISABLE_IMPLICIT_TOKEN and _may_have_token():
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

        return dict(build_hf_headers(library_name="mlwarden", library_version=_version()))
    import platform

    ua = f"mlwarden/{_version()}; hf_hub/{hub_version}; python/{platform.python_version()}"
    origin = os.environ.get("HF_HUB_USER_AGENT_ORIGIN")
    if origin:
        ua += f"; origin/{origin}"
    return {"user-agent": ua}


def _version() -> str:
    from mlwarden import __version__

    return __version__
