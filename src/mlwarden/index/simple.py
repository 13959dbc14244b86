"""The simple repository API: PEP 503 HTML and PEP 691 JSON (api-version 1.1, PEP 700),
with PEP 592 yanking, PEP 658/714 core metadata and data-requires-python.

Every URL is relative to the page, so the index works unchanged behind a proxy that
mounts it under a path prefix.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from mlwarden.index.model import Candidate, IndexFile

API_VERSION = "1.1"
JSON = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
# Server preference when the client's q-values tie: JSON first.
_OFFERED = (JSON, HTML_V1, TEXT_HTML)
_ALIASES = {"application/vnd.pypi.simple.latest+json": JSON,
            "application/vnd.pypi.simple.latest+html": HTML_V1}


def negotiate(accept: str | None, format_param: str | None = None) -> str | None:
    """The content type to answer with, or None (406). No Accept header means HTML."""
    if format_param:
        format_param = format_param.replace(" ", "+")  # an unencoded "+" in the query
        want = _ALIASES.get(format_param, format_param)
        return want if want in _OFFERED else None
    if not accept or not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        fields = [x.strip() for x in part.split(";")]
        mtype = _ALIASES.get(fields[0].lower(), fields[0].lower())
        q = 1.0
        for p in fields[1:]:
            k, _, v = p.partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        # */* means "anything": HTML, as PyPI answers, for clients that predate PEP 691.
        matches = [TEXT_HTML] if mtype == "*/*" else [o for o in _OFFERED if mtype == o or (
            mtype.endswith("/*") and o.startswith(mtype[:-1]))]
        for m in matches:
            cand = (q, -_OFFERED.index(m), m)
            if best is None or cand > best:
                best = cand
    return best[2] if best else None


@dataclass(frozen=True)
class Link:
    filename: str
    url: str  # relative to the project page
    sha256: str
    requires_python: str | None
    yanked: str | None
    metadata_sha256: str | None
    size: int | None
    upload_time: float | None


def file_url(project: str, filename: str) -> str:
    return f"../../packages/{project}/{filename}"


def links(files: Sequence[IndexFile], candidates: Sequence[Candidate]) -> list[Link]:
    out = [Link(f.filename, file_url(f.project, f.filename), f.sha256 or "",
                f.requires_python, f.yanked,
                f.metadata_sha256 if f.kind == "wheel" else None, f.size, f.upload_time)
           for f in files if f.sha256]
    out += [Link(c.filename, file_url(c.project, c.filename), c.sha256 or "",
                 c.requires_python, c.yanked, None, c.size, c.upload_time)
            for c in candidates if c.sha256]
    return sorted(out, key=lambda x: x.filename)


def _iso(ts: float) -> str:
    d = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_json(project: str, items: Sequence[Link], versions: Sequence[str]) -> bytes:
    files = []
    for x in items:
        d: dict[str, object] = {"filename": x.filename, "url": f"{x.url}",
                                "hashes": {"sha256": x.sha256},
                                "yanked": (x.yanked or True) if x.yanked is not None else False}
        if x.requires_python:
            d["requires-python"] = x.requires_python
        meta: object = {"sha256": x.metadata_sha256} if x.metadata_sha256 else False
        d["core-metadata"] = meta
        d["dist-info-metadata"] = meta  # PEP 714: the old key, for older clients
        if x.size is not None:
            d["size"] = x.size
        if x.upload_time is not None:
            d["upload-time"] = _iso(x.upload_time)
        files.append(d)
    doc = {"meta": {"api-version": API_VERSION}, "name": project, "files": files,
           "versions": list(versions)}
    return json.dumps(doc, separators=(",", ":")).encode()


def project_html(project: str, items: Sequence[Link]) -> bytes:
    esc = html.escape
    lines = ["<!DOCTYPE html>", "<html>", "  <head>",
             f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
             f"    <title>Links for {esc(project)}</title>", "  </head>", "  <body>",
             f"    <h1>Links for {esc(project)}</h1>"]
    for x in items:
        attrs = [f'href="{esc(x.url)}#sha256={x.sha256}"']
        if x.requires_python:
            attrs.append(f'data-requires-python="{esc(x.requires_python)}"')
        if x.yanked is not None:
            attrs.append(f'data-yanked="{esc(x.yanked)}"')
        if x.metadata_sha256:
            attrs.append(f'data-core-metadata="sha256={x.metadata_sha256}"')
            attrs.append(f'data-dist-info-metadata="sha256={x.metadata_sha256}"')
        lines.append(f"    <a {' '.join(attrs)}>{esc(x.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode()


def index_json(projects: Sequence[str]) -> bytes:
    return json.dumps({"meta": {"api-version": API_VERSION},
                       "projects": [{"name": p} for p in projects]},
                      separators=(",", ":")).encode()


def index_html(projects: Sequence[str]) -> bytes:
    body = "\n".join(f'    <a href="{html.escape(p)}/">{html.escape(p)}</a><br>'
                     for p in projects)
    return ("<!DOCTYPE html>\n<html>\n  <head>\n"
            f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            "    <title>Simple index</title>\n  </head>\n  <body>\n"
            f"{body}\n  </body>\n</html>\n").encode()
