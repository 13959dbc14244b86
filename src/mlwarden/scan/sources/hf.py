"""``hf://[datasets/|spaces/]ORG/NAME[@REV][/PATH]``: a Hub repository (or a mirror, or
``mlwarden serve``) read through huggingface_hub and its ``HfFileSystem``.

Endpoint and token come from huggingface_hub exactly as it finds them (``HF_ENDPOINT``,
``HF_TOKEN``, the stored token, ``HF_HUB_DISABLE_IMPLICIT_TOKEN``). The revision is resolved
once to its 40-hex commit, and every read names that commit, so a branch that moves during
the scan cannot mix two versions. sha256 values come from the tree's LFS metadata.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any
from urllib.parse import urljoin, urlsplit

from mlwarden.scan.sources.base import RemoteFile, RemoteInputError, RemoteTree
from mlwarden.scan.sources.polite import (
    RetryableStatus,
    endpoint_of,
    parse_retry_after,
    polite_call,
)
from mlwarden.scan.sources.ranges import BLOCK, RangeCache, RemoteReadError

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
        from huggingface_hub.utils import get_session  # type: ignore[attr-defined]

        url = self.location or self.url
        for _hop in range(5):
            same = _origin(url) == _origin(self.endpoint)
            headers = {**(self.headers if same else {}), "Range": f"bytes={start}-{end - 1}",
                       "Accept-Encoding": "identity"}
            status, hdrs, body = _request(get_session(), url, headers, end - start)
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


def _request(session: Any, url: str, headers: dict[str, str],
             want: int) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects; read at most ``want`` bytes of the body."""
    if hasattr(session, "stream"):  # httpx-style client (huggingface_hub >= 1.0)
        with session.stream("GET", url, headers=headers, follow_redirects=False) as r:
            hdrs = {k.lower(): v for k, v in r.headers.items()}
            body = _read_at_most(r.iter_bytes(), want) if r.status_code in (200, 206) else b""
            return r.status_code, hdrs, body
    r = session.get(url, headers=headers, allow_redirects=False, stream=True)
    try:
        hdrs = {k.lower(): v for k, v in r.headers.items()}
        body = _read_at_most(r.iter_content(1 << 16), want) \
            if r.status_code in (200, 206) else b""
        return r.status_code, hdrs, body
    finally:
        r.close()


def _read_at_most(chunks: Any, want: int) -> bytes:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) >= want:
            break
    return bytes(buf[:want]) if len(buf) > want else bytes(buf)


def open_tree(arg: str, endpoint: str | None = None) -> RemoteTree:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    repo_type, repo_id, revision, subpath = parse(arg)
    api = HfApi(endpoint=endpoint)  # endpoint, token: as huggingface_hub resolves them
    endpoint = str(api.endpoint).rstrip("/")
    polite = endpoint_of(endpoint)
    try:
        info = polite_call(polite, lambda: api.repo_info(repo_id, revision=revision,
                                                         repo_type=repo_type),
                           f"{repo_id}: repository info")
    except Exception as exc:
        raise RemoteInputError(f"{arg}: {_describe(exc)}") from None
    commit = getattr(info, "sha", None)
    if not isinstance(commit, str) or not HEX40.fullmatch(commit):
        raise RemoteInputError(f"{arg}: the endpoint gave no valid commit id ({commit!r})")
    if revision is not None and HEX40.fullmatch(revision) and revision != commit:
        raise RemoteInputError(f"{arg}: asked for commit {revision}, got {commit}")

    def listing() -> list[Any]:
        out = []
        for e in api.list_repo_tree(repo_id, revision=commit, recursive=True,
                                    repo_type=repo_type, path_in_repo=subpath or None):
            out.append(e)
            if len(out) > MAX_FILES:
                raise RemoteInputError(f"{arg}: more than {MAX_FILES} files")
        return out

    try:
        entries = polite_call(polite, listing, f"{repo_id}@{commit[:12]}: tree")
    except RemoteInputError:
        raise
    except Exception as exc:
        if subpath and "EntryNotFound" in type(exc).__name__:
            entries = []
        else:
            raise RemoteInputError(f"{arg}: listing failed: {_describe(exc)}") from None
    files: dict[str, RemoteFile] = {}
    for e in entries:
        if not isinstance(e, RepoFile):
            continue
        files[e.path] = _remote_file(e, arg)
    whole = not subpath
    if subpath and not files:
        raise RemoteInputError(f"{arg}: {subpath} is not in {repo_id}@{commit[:12]}")
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    return make_tree(arg, repo_type, repo_id, commit, list(files.values()), endpoint,
                     api._build_hf_headers(), display_root=f"hf://{prefix}{repo_id}@{commit}",
                     revision=revision or "main", whole=whole)


def make_tree(given: str, repo_type: str, repo_id: str, commit: str, files: list[RemoteFile],
              endpoint: str, auth: dict[str, str], display_root: str,
              revision: str | None = None, whole: bool = True) -> RemoteTree:
    """A tree over files already listed (the airlock lists them itself). ``auth`` holds the
    headers sent to the endpoint's own origin (empty: anonymous)."""
    from huggingface_hub import HfFileSystem

    polite = endpoint_of(endpoint)
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    fs = HfFileSystem(endpoint=endpoint, token=False)  # shared by every file of this tree
    with contextlib.suppress(AttributeError, TypeError):  # private; saves one request
        fs._repo_and_revision_exists_cache[(repo_type, repo_id, commit)] = (True, None)

    def opener(f: RemoteFile, cache_options: dict[str, Any]) -> Any:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo_id, f.path, repo_type=repo_type, revision=commit,
                         endpoint=endpoint)
        return _hf_file(fs, f"{prefix}{repo_id}@{commit}/{f.path}", commit, f.size,
                        _Fetcher(url, auth, polite, commit), cache_options)

    return RemoteTree(
        kind="hf", given=given, display_root=display_root, endpoint=polite,
        files=tuple(sorted(files, key=lambda f: f.path)), opener=opener, repo_id=repo_id,
        revision=revision, commit=commit, whole_repository=whole)


def _hf_file(fs: Any, path: str, commit: str, size: int, fetcher: _Fetcher,
             cache_options: dict[str, Any]) -> Any:
    """An ``HfFileSystemFile`` whose reads go through our range cache and fetcher."""
    from huggingface_hub.hf_file_system import HfFileSystemFile

    class _RangeFile(HfFileSystemFile):
        def url(self) -> str:
            return fetcher.url

        def _fetch_range(self, start: int, end: int) -> bytes:
            return fetcher(start, end)

    return _RangeFile(fs, path, revision=commit, mode="rb", block_size=BLOCK,
                      cache_type=RangeCache.name, cache_options=cache_options, size=size)


def _remote_file(e: Any, arg: str) -> RemoteFile:
    size = e.size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RemoteInputError(f"{arg}: {e.path!r} has size {size!r}")
    sha256 = None
    lfs = getattr(e, "lfs", None)
    if lfs is not None:
        sha = lfs.sha256 if hasattr(lfs, "sha256") else lfs.get("sha256")
        if isinstance(sha, str) and HEX64.fullmatch(sha):
            sha256 = sha
    oid = getattr(e, "blob_id", None)
    return RemoteFile(e.path, size, sha256, "lfs-metadata" if sha256 else None,
                      oid if isinstance(oid, str) else None)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if "RepositoryNotFound" in name:
        return "repository not found (or no access)"
    if "GatedRepo" in name:
        return "repository is gated (access denied)"
    if "RevisionNotFound" in name:
        return "revision not found"
    text = str(exc).splitlines()[0] if str(exc) else name
    return f"{name}: {text[:300]}"
