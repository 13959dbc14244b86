"""Reading the upstream index: project pages (PEP 691 JSON preferred, PEP 503 HTML), the
project list, and file downloads. Parsing is pypi-simple's; transport is requests with
timeouts and size bounds. Every failure raises ``UpstreamError``: callers fail closed.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.index.model import Candidate
from mlwarden.index.names import NameError_, canonical, parse_filename

ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
          "text/html;q=0.01")
MAX_PAGE = 64 << 20
MAX_PROJECT_LIST = 512 << 20
CHUNK = 1 << 20
USER_AGENT = "mlwarden-index"


class UpstreamError(Exception):
    """The upstream could not answer (network, HTTP status, malformed page)."""


class NotFound(UpstreamError):
    pass


@dataclass(frozen=True)
class Download:
    sha256: str
    size: int
    last_modified: float | None


class Upstream:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import requests

        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self._requests = requests
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        self.session.close()

    def _get(self, url: str, accept: str, limit: int) -> tuple[bytes, str, str]:
        req = self._requests
        try:
            with self.session.get(url, headers={"Accept": accept}, timeout=self.timeout,
                                  stream=True) as r:
                if r.status_code == 404:
                    raise NotFound(f"{url}: not found upstream")
                if r.status_code != 200:
                    raise UpstreamError(f"{url}: HTTP {r.status_code}")
                body = bytearray()
                for chunk in r.iter_content(CHUNK):
                    body += chunk
                    if len(body) > limit:
                        raise UpstreamError(f"{url}: answer larger than {limit} bytes")
                return bytes(body), r.headers.get("Content-Type", ""), r.url
        except req.RequestException as exc:
            raise UpstreamError(f"{url}: {exc.__class__.__name__}: {exc}") from exc

    def project(self, project: str) -> list[Candidate]:
        """Files the upstream lists for ``project`` (canonical name)."""
        from pypi_simple import ProjectPage

        url = f"{self.url}{project}/"
        body, ctype, final = self._get(url, ACCEPT, MAX_PAGE)
        try:
            if "json" in ctype:
                page = ProjectPage.from_json_data(json.loads(body), base_url=final)
            else:
                page = ProjectPage.from_html(project, body, base_url=final)
        except Exception as exc:  # pypi-simple raises several types for bad pages
            raise UpstreamError(f"{url}: unreadable project page ({exc})") from exc
        out: list[Candidate] = []
        for pkg in page.packages:
            try:
                dist = parse_filename(pkg.filename)
            except NameError_:
                continue  # eggs, .exe, unparseable names: never served
            if dist.project != project:
                continue  # a file of another project listed here is not this project's
            sha = (pkg.digests or {}).get("sha256")
            up = pkg.upload_time.timestamp() if pkg.upload_time is not None else None
            out.append(Candidate(
                filename=dist.filename, project=project, version=dist.version,
                kind=dist.kind, url=pkg.url, sha256=sha.lower() if sha else None,
                requires_python=pkg.requires_python or None,
                yanked=(pkg.yanked_reason or "") if pkg.is_yanked else None,
                upload_time=up, size=pkg.size))
        return out

    def project_names(self) -> Iterator[str]:
        """Every project the upstream lists (its /simple/ root), canonical."""
        from pypi_simple import IndexPage

        body, ctype, _ = self._get(self.url, ACCEPT, MAX_PROJECT_LIST)
        try:
            if "json" in ctype:
                page = IndexPage.from_json_data(json.loads(body))
            else:
                page = IndexPage.from_html(body)
        except Exception as exc:
            raise UpstreamError(f"{self.url}: unreadable project list ({exc})") from exc
        for name in page.projects:
            try:
                yield canonical(name)
            except NameError_:
                continue

    def head(self, url: str) -> tuple[float | None, int | None]:
        """(Last-Modified, Content-Length) of a file: what a PEP 503 page does not say."""
        try:
            r = self.session.head(url, timeout=self.timeout, allow_redirects=True)
        except self._requests.RequestException as exc:
            raise UpstreamError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
        if r.status_code != 200:
            raise UpstreamError(f"{url}: HTTP {r.status_code}")
        length = r.headers.get("Content-Length")
        return (_http_date(r.headers.get("Last-Modified")),
                int(length) if length and length.isdigit() else None)

    def download(self, url: str, dest: Path, max_bytes: int) -> Download:
        """Stream ``url`` into ``dest``, hashing what was written."""
        h = hashlib.sha256()
        size = 0
        try:
            with self.session.get(url, timeout=self.timeout, stream=True) as r, \
                    open(dest, "wb") as out:
                if r.status_code != 200:
                    raise UpstreamError(f"{url}: HTTP {r.status_code}")
                last = _http_date(r.headers.get("Last-Modified"))
                for chunk in r.iter_content(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UpstreamError(f"{url}: larger than {max_bytes} bytes")
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
        except self._requests.RequestException as exc:
            raise UpstreamError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
        except OSError as exc:
            raise UpstreamError(f"{url}: cannot write quarantine copy: {exc}") from exc
        return Download(h.hexdigest(), size, last)


def _http_date(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def candidates_to_json(cands: list[Candidate]) -> list[dict[str, Any]]:
    return [c.__dict__ for c in cands]


def candidates_from_json(data: Any) -> list[Candidate]:
    return [Candidate(**d) for d in data]


def now() -> float:
    return time.time()
