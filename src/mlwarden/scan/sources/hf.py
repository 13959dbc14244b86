"""``hf://[datasets/|spaces/]ORG/NAME[@REV][/PATH]``: a Hub repository (or a mirror, or
``mlwarden serve``) read through huggingface_hub's HTTP layer.

Endpoint and token come from huggingface_hub exactly as it finds them (``HF_ENDPOINT``,
``HF_TOKEN``, the stored token, ``HF_HUB_DISABLE_IMPLICIT_TOKEN``). The revision is resolved
once to its 40-hex commit, and every read names that commit, so a branch that moves during
the scan cannot mix two versions. sha256 values come from the tree's LFS metadata.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from mlwarden.scan.sources import http
from mlwarden.scan.sources.base import RemoteFile, RemoteInputError, RemoteTree
from mlwarden.scan.sources.polite import (
    RetryableStatus,
    endpoint_of,
    parse_retry_after,
    polite_call,
)
from mlwarden.scan.sources.ranges import (
    BLOCK,
    FetchStats,
    RangeCache,
    ReadLog,
    RemoteBlob,
    RemoteReadError,
)
from mlwarden.util.forkguard import GUARD

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_SPECIAL_REV = re.compile(r"^refs/(pr|convert)/[^/]+")
MAX_FILES = 200_000


def parse(arg: str) -> tuple[str, str, str | None, str]:
    """(repo_type, repo_id, revision or None, path inside the repository)."""
    rest = arg[len("hf://"):].strip("/")
    repo_type = "model"
    head, _, tail = rest.partition("/")
    if head in _TYPES:
        repo_type, rest = _TYPES[head], tail
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise RemoteInputError(f"{arg}: expected hf://ORG/NAME[@REVISION][/PATH]")
    org, name_rev = parts[0], parts[1]
    remainder = "/".join(parts[2:])
    revision: str | None = None
    if "@" in name_rev:
        name, revision = name_rev.split("@", 1)
        if revision == "refs" or revision.startswith("refs%2F"):
            # refs/pr/N spans path segments: take it whole.
            m = _SPECIAL_REV.match(f"{revision}/{remainder}".replace("%2F", "/"))
            if m:
                revision = m.group(0)
                remainder = f"{revision}/{remainder}".replace("%2F", "/")[len(revision):]
        revision = revision.replace("%2F", "/")
        if not revision:
            raise RemoteInputError(f"{arg}: empty revision after '@'")
    else:
        name = name_rev
    if "@" in org:
        raise RemoteInputError(f"{arg}: expected hf://ORG/NAME[@REVISION][/PATH]")
    return repo_type, f"{org}/{name}", revision, remainder.strip("/")


class _Fetcher:
    """Range GETs on the resolve URL of one file at one commit. A redirect (the Hub's CDN,
    a registry's presigned URL) is followed once and its target reused for later ranges;
    the token is sent only to the endpoint's own origin."""

    def __init__(self, url: str, headers: dict[str, str], endpoint: str, commit: str) -> None:
        self.url = url
        self.headers = headers
        self.endpoint = endpoint
        self.commit = commit
        self.location: str | None = None
        self._lock = threading.Lock()

    def __call__(self, start: int, end: int) -> bytes:
        return polite_call(self.endpoint, lambda: self._get(start, end),
                           f"{self.url} bytes {start}-{end - 1}")

    def _get(self, start: int, end: int) -> bytes:
        url = self.location or self.url
        for _hop in range(5):
            same = _origin(url) == _origin(self.endpoint)
            headers = {**(self.headers if same else {}), "Range": f"bytes={start}-{end - 1}",
                       "Accept-Encoding": "identity"}
            status, hdrs, body = _request(url, headers, end - start)
            if status in (301, 302, 303, 307, 308):
                loc = hdrs.get("location")
                if not loc:
                    raise RemoteReadError(f"redirect without Location from {url}")
                got = hdrs.get("x-repo-commit")
                if got and got != self.commit:
                    raise RemoteReadError(f"X-Repo-Commit is {got}, expected {self.commit}")
                url = urljoin(url, loc)
                with self._lock:
                    self.location = url
                continue
            if status == 429 or status >= 500:
                raise RetryableStatus(status, parse_retry_after(hdrs.get("retry-after")),
                                      f"HTTP {status} from {url}")
            got = hdrs.get("x-repo-commit")
            if got and got != self.commit and status in (200, 206):
                raise RemoteReadError(f"X-Repo-Commit is {got}, expected {self.commit}")
            if status == 206:
                return body
            if status == 200 and start == 0:
                return body  # Range ignored: _request stopped after the bytes asked for
            if status == 200:
                raise RemoteReadError(f"{url} ignores Range requests")
            raise RemoteReadError(f"HTTP {status} reading {url}")
        raise RemoteReadError(f"too many redirects reading {self.url}")


def _origin(url: str) -> tuple[str, str | None, int | None]:
    u = urlsplit(url)
    return u.scheme, u.hostname, u.port


def _request(url: str, headers: dict[str, str], want: int) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects; read at most ``want`` bytes of the body."""
    with GUARD.network():
        r = http.request("GET", url, headers, want)
    return r.status_code, r.headers, r.body if r.status_code in (200, 206) else b""


def open_tree(arg: str, endpoint: str | None = None) -> RemoteTree:
    """Resolve ``arg`` with one metadata request: the repository info at the revision with
    its files' metadata (``HfApi.repo_info(files_metadata=True)``'s request), made through
    huggingface_hub's own session, headers and error mapping. An endpoint whose info lacks
    file metadata is listed with ``HfApi.list_repo_tree`` instead."""
    from huggingface_hub import constants

    repo_type, repo_id, revision, subpath = parse(arg)
    if constants.HF_HUB_OFFLINE:
        raise RemoteInputError(f"{arg}: HF_HUB_OFFLINE is set: remote repositories cannot be "
                               "read")
    # As HfApi(endpoint=...) resolves them: HF_ENDPOINT, and HF_TOKEN / the stored token
    # unless HF_HUB_DISABLE_IMPLICIT_TOKEN.
    endpoint = str(endpoint if endpoint is not None else constants.ENDPOINT).rstrip("/")
    polite = endpoint_of(endpoint)
    auth = http.hf_headers()
    url = f"{endpoint}/api/{repo_type}s/{repo_id}"
    if revision is not None:
        url += f"/revision/{quote(revision, safe='')}"
    try:
        info = polite_call(polite, lambda: _get_json(url, auth, {"blobs": "true"}),
                           f"{repo_id}: repository info")
    except Exception as exc:
        raise RemoteInputError(f"{arg}: {_describe(exc)}") from None
    commit = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(commit, str) or not HEX40.fullmatch(commit):
        raise RemoteInputError(f"{arg}: the endpoint gave no valid commit id ({commit!r})")
    if revision is not None and HEX40.fullmatch(revision) and revision != commit:
        raise RemoteInputError(f"{arg}: asked for commit {revision}, got {commit}")
    files = _siblings(info, arg)
    if files is None:
        files = _list_tree(arg, endpoint, repo_type, repo_id, commit, polite)
    if subpath:  # one file, or a folder
        files = [f for f in files if f.path == subpath or f.path.startswith(subpath + "/")]
    if subpath and not files:
        raise RemoteInputError(f"{arg}: {subpath} is not in {repo_id}@{commit[:12]}")
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    return make_tree(arg, repo_type, repo_id, commit, files, endpoint, auth,
                     display_root=f"hf://{prefix}{repo_id}@{commit}",
                     revision=revision or "main", whole=not subpath)


def _get_json(url: str, headers: dict[str, str], params: dict[str, str]) -> Any:
    with GUARD.network():
        return http.get_json(url, headers, params)


def _siblings(info: dict[str, Any], arg: str) -> list[RemoteFile] | None:
    """The files of a ``blobs=true`` repository info; None when any lacks its size."""
    sibs = info.get("siblings")
    if not isinstance(sibs, list) or len(sibs) > MAX_FILES:
        return None
    files: dict[str, RemoteFile] = {}
    for s in sibs:
        if not isinstance(s, dict) or not isinstance(s.get("rfilename"), str) \
                or "size" not in s:
            return None
        lfs = s.get("lfs")
        files[s["rfilename"]] = _remote_file(
            s["rfilename"], s["size"], lfs.get("sha256") if isinstance(lfs, dict) else None,
            s.get("blobId"), arg)
    return list(files.values())


def _list_tree(arg: str, endpoint: str, repo_type: str, repo_id: str, commit: str,
               polite: str) -> list[RemoteFile]:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint)

    def listing() -> list[Any]:
        out = []
        with GUARD.network():
            for e in api.list_repo_tree(repo_id, revision=commit, recursive=True,
                                        repo_type=repo_type):
                out.append(e)
                if len(out) > MAX_FILES:
                    raise RemoteInputError(f"{arg}: more than {MAX_FILES} files")
        return out

    try:
        entries = polite_call(polite, listing, f"{repo_id}@{commit[:12]}: tree")
    except RemoteInputError:
        raise
    except Exception as exc:
        raise RemoteInputError(f"{arg}: listing failed: {_describe(exc)}") from None
    files: dict[str, RemoteFile] = {}
    for e in entries:
        if isinstance(e, RepoFile):
            lfs = getattr(e, "lfs", None)
            sha = (lfs.sha256 if hasattr(lfs, "sha256") else lfs.get("sha256")) \
                if lfs is not None else None
            files[e.path] = _remote_file(e.path, e.size, sha, getattr(e, "blob_id", None),
                                         arg)
    return list(files.values())


def make_tree(given: str, repo_type: str, repo_id: str, commit: str, files: list[RemoteFile],
              endpoint: str, auth: dict[str, str], display_root: str,
              revision: str | None = None, whole: bool = True) -> RemoteTree:
    """A tree over files already listed (the airlock lists them itself). ``auth`` holds the
    headers sent to the endpoint's own origin (empty: anonymous)."""
    polite = endpoint_of(endpoint)
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]

    def opener(f: RemoteFile, stats: FetchStats) -> RemoteBlob:
        # huggingface_hub's resolve URL (hf_hub_url) at the pinned commit.
        url = _resolve_url(endpoint, f"{prefix}{repo_id}", commit, f.path)
        return RemoteBlob(RangeCache(BLOCK, _Fetcher(url, auth, polite, commit), f.size,
                                     stats, ReadLog()))

    return RemoteTree(
        kind="hf", given=given, display_root=display_root, endpoint=polite,
        files=tuple(sorted(files, key=lambda f: f.path)), opener=opener, repo_id=repo_id,
        revision=revision, commit=commit, whole_repository=whole)


def _resolve_url(endpoint: str, repo: str, commit: str, path: str) -> str:
    """``hf_hub_url``: huggingface_hub's resolve URL template, without importing its
    download module."""
    from huggingface_hub import constants

    return constants.HUGGINGFACE_CO_URL_TEMPLATE.replace(
        constants.ENDPOINT, endpoint, 1).format(
        repo_id=repo, revision=quote(commit, safe=""), filename=quote(path))


def _remote_file(path: Any, size: Any, sha: Any, oid: Any, arg: str) -> RemoteFile:
    if not isinstance(path, str):
        raise RemoteInputError(f"{arg}: file name {path!r} is not a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RemoteInputError(f"{arg}: {path!r} has size {size!r}")
    sha256 = sha if isinstance(sha, str) and HEX64.fullmatch(sha) else None
    return RemoteFile(path, size, sha256, "lfs-metadata" if sha256 else None,
                      oid if isinstance(oid, str) else None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.HttpStatusError):
        # The Hub's error codes, as huggingface_hub's hf_raise_for_status maps them.
        code = exc.response.headers.get("x-error-code", "")
        status = exc.response.status_code
        if code == "GatedRepo":
            return "repository is gated (access denied)"
        if code == "RevisionNotFound":
            return "revision not found"
        if code == "RepoNotFound" or status == 401 or (status == 404 and not code):
            return "repository not found (or no access)"
        return str(exc)[:300]
    name = type(exc).__name__
    if "RepositoryNotFound" in name:
        return "repository not found (or no access)"
    if "GatedRepo" in name:
        return "repository is gated (access denied)"
    if "RevisionNotFound" in name:
        return "revision not found"
    text = str(exc).splitlines()[0] if str(exc) else name
    return f"{name}: {text[:300]}"
