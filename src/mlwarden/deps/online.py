"""Online lookups (public index, OSV), bounded and failing closed: any failure raises
LookupFailed, which callers turn into a ``deps-lookup-failed`` finding, never "not found"."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from packaging.utils import canonicalize_name

DEFAULT_INDEX = "https://pypi.org"
DEFAULT_OSV = "https://api.osv.dev"
MAX_RESPONSE = 8 << 20
TIMEOUT = 10.0


class LookupFailed(Exception):
    pass


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only within the configured origin: a fallback redirect to another
    host (pypiserver -> pypi.org) would silently query a different index."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise LookupFailed(f"redirected to another origin ({new.scheme}://{new.netloc})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects())


def fetch(url: str, data: bytes | None = None, timeout: float = TIMEOUT,
          accept: str = "application/json") -> tuple[int, bytes]:
    """(status, body) for 2xx/404; raises LookupFailed for anything else."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise LookupFailed(f"unsupported URL scheme in {url}")
    headers = {"Accept": accept, "User-Agent": "mlwarden-deps"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            body = resp.read(MAX_RESPONSE + 1)
            if len(body) > MAX_RESPONSE:
                raise LookupFailed(f"response from {url} is larger than {MAX_RESPONSE} bytes")
            return int(resp.status), body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 404, b""
        raise LookupFailed(f"{url}: HTTP {exc.code}") from exc
    except LookupFailed:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LookupFailed(f"{url}: {reason}") from exc


def project_exists(name: str, index_url: str = DEFAULT_INDEX, timeout: float = TIMEOUT) -> bool:
    """Whether ``name`` is published on the index. ``index_url`` is either a base URL that
    serves PyPI's JSON API (``/pypi/NAME/json``) or a simple-API root ending in ``/simple``."""
    canon = str(canonicalize_name(name))
    base = index_url.rstrip("/")
    if base.endswith("/simple"):
        status, _ = fetch(f"{base}/{canon}/", timeout=timeout,
                          accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        return status == 200
    status, body = fetch(f"{base}/pypi/{urllib.parse.quote(canon)}/json", timeout=timeout)
    if status == 404:
        return False
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise LookupFailed(f"{base}: invalid JSON for {canon}") from exc
    if not isinstance(doc, dict) or "info" not in doc:
        raise LookupFailed(f"{base}: unexpected JSON for {canon}")
    return True


def osv_querybatch(queries: list[tuple[str, str]], base_url: str = DEFAULT_OSV,
                   timeout: float = TIMEOUT) -> list[list[str]]:
    """Advisory ids per (name, version), from OSV's /v1/querybatch (one page per query)."""
    if not queries:
        return []
    body = json.dumps({"queries": [
        {"package": {"name": n, "ecosystem": "PyPI"}, "version": v} for n, v in queries
    ]}).encode()
    status, raw = fetch(base_url.rstrip("/") + "/v1/querybatch", data=body, timeout=timeout)
    if status != 200:
        raise LookupFailed(f"{base_url}: HTTP {status} from querybatch")
    try:
        results = json.loads(raw)["results"]
        if len(results) != len(queries):
            raise LookupFailed(f"{base_url}: {len(results)} results for {len(queries)} queries")
        return [[str(v["id"]) for v in (r.get("vulns") or [])] for r in results]
    except (ValueError, KeyError, TypeError) as exc:
        raise LookupFailed(f"{base_url}: malformed querybatch answer") from exc
