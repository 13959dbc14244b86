"""A fake Hub for the airlock tests: honest by default, and able to lie on request.

``HostileHub(files, lies)`` serves one repository at one commit over the endpoints the
airlock uses (repo info, refs, tree, resolve HEAD/GET). ``lies`` switches on one kind of
hostile behaviour at a time (see LIES).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlwarden.store.hashing import git_blob_sha1, is_lfs, lfs_pointer

COMMIT = "1" * 40
OTHER = "2" * 40
LIES = {
    "traversal-name": "tree lists ../../evil.bin",
    "absolute-name": "tree lists /tmp/evil.bin",
    "etag-traversal": "ETag is ../../../../evil_blob",
    "etag-wrong": "X-Linked-Etag is another sha256",
    "commit-not-hex": "repository info sha is ../../../../evil_tree",
    "head-commit": "X-Repo-Commit names another commit",
    "refs-commit": "refs list says main is another commit",
    "lfs-size": "tree size differs from lfs.size",
    "head-size": "X-Linked-Size differs from the tree",
    "tamper": "GET body differs from the metadata (same length)",
    "range-swap": "Range requests for big* files get other bytes than the full GET",
    "short-body": "GET body shorter than declared",
    "get-500": "GET answers 500",
}


@dataclass
class Entry:
    data: bytes
    lfs: bool
    sha256: str
    oid: str


@dataclass
class HostileHub:
    repo: str
    files: dict[str, bytes]
    lies: set[str] = field(default_factory=set)
    commit: str = COMMIT
    tags: dict[str, str] = field(default_factory=dict)
    auth_seen: list[str] = field(default_factory=list)  # Authorization headers received

    def entries(self) -> dict[str, Entry]:
        out = {}
        for path, data in self.files.items():
            lfs = is_lfs(path, len(data), data[:8000])
            sha = hashlib.sha256(data).hexdigest()
            oid = git_blob_sha1(lfs_pointer(sha, len(data))) if lfs else git_blob_sha1(data)
            out[path] = Entry(data, lfs, sha, oid)
        return out

    # ------------------------------------------------------------------ handlers

    def info(self, request: Request) -> Response:
        self._record(request)
        sha = "../../../../evil_tree" if "commit-not-hex" in self.lies else self.commit
        return JSONResponse({"id": self.repo, "modelId": self.repo, "sha": sha,
                             "private": False, "tags": [],
                             "siblings": [{"rfilename": p} for p in self.files]})

    def refs(self, request: Request) -> Response:
        self._record(request)
        main = OTHER if "refs-commit" in self.lies else self.commit
        return JSONResponse({
            "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": main}],
            "converts": [],
            "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c}
                     for t, c in self.tags.items()]})

    def tree(self, request: Request) -> Response:
        self._record(request)
        items: list[dict[str, Any]] = []
        for path, e in self.entries().items():
            item: dict[str, Any] = {"type": "file", "path": path, "size": len(e.data),
                                    "oid": e.oid}
            if e.lfs:
                item["lfs"] = {"oid": e.sha256, "size": len(e.data), "pointerSize": 134}
                if "lfs-size" in self.lies:
                    item["lfs"]["size"] = len(e.data) + 1
            items.append(item)
        if "traversal-name" in self.lies:
            items.append({"type": "file", "path": "../../evil.bin", "size": 4,
                          "oid": git_blob_sha1(b"evil")})
        if "absolute-name" in self.lies:
            items.append({"type": "file", "path": "/tmp/evil.bin", "size": 4,
                          "oid": git_blob_sha1(b"evil")})
        return JSONResponse(items)

    def resolve(self, request: Request) -> Response:
        self._record(request)
        path = request.path_params["path"]
        e = self.entries().get(path)
        if e is None:
            return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound",
                                                      "X-Repo-Commit": self.commit})
        etag = e.sha256 if e.lfs else e.oid
        if "etag-traversal" in self.lies:
            etag = "../../../../evil_blob"
        if "etag-wrong" in self.lies and e.lfs:
            etag = hashlib.sha256(b"other").hexdigest()
        size = len(e.data) + (7 if "head-size" in self.lies else 0)
        headers = {"X-Repo-Commit": OTHER if "head-commit" in self.lies else self.commit,
                   "ETag": f'"{e.oid}"', "Content-Length": str(len(e.data)),
                   "Accept-Ranges": "bytes"}
        if e.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        else:
            headers["ETag"] = f'"{etag}"'
            headers["Content-Length"] = str(size)
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers)
        if "get-500" in self.lies:
            return Response("upstream exploded", status_code=500)
        body = e.data
        if "tamper" in self.lies and e.lfs:  # past the header the pre-scan judges
            body = body[:-1] + bytes([body[-1] ^ 1])
        rng = request.headers.get("range", "")
        if "range-swap" in self.lies and path.startswith("big") and rng.startswith("bytes="):
            lo, _, hi = rng[len("bytes="):].partition("-")
            swapped = body[:1000] + bytes([body[1000] ^ 1]) + body[1001:]
            part = swapped[int(lo):int(hi) + 1 if hi else None]
            headers["Content-Length"] = str(len(part))
            headers["Content-Range"] = f"bytes {lo}-{int(lo) + len(part) - 1}/{len(body)}"
            headers.pop("X-Linked-Size", None)
            return Response(part, status_code=206, headers=headers,
                            media_type="application/octet-stream")
        if "short-body" in self.lies:
            body = body[: len(body) // 2]
        headers["Content-Length"] = str(len(body))
        headers.pop("X-Linked-Size", None)
        return Response(body, status_code=200, headers=headers,
                        media_type="application/octet-stream")

    def _record(self, request: Request) -> None:
        if "authorization" in request.headers:
            self.auth_seen.append(request.headers["authorization"])

    def app(self) -> Starlette:
        org, name = self.repo.split("/")
        base = f"/api/models/{org}/{name}"
        return Starlette(routes=[
            Route(base, self.info),
            Route(base + "/revision/{rev}", self.info),
            Route(base + "/refs", self.refs),
            Route(base + "/tree/{rev}", self.tree),
            Route(f"/{org}/{name}/resolve/{{rev}}/{{path:path}}", self.resolve,
                  methods=["GET", "HEAD"]),
        ])
