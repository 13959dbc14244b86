"""Talking to the upstream Hub (or a mirror) through huggingface_hub, trusting nothing.

Every value that later becomes a path, a cache key or a comparison is checked here:
commit ids must be 40 lower-case hex digits and agree with each other, file names must
stay inside the repository, LFS sizes must match tree sizes, oids must be hashes. A
violation raises :class:`UpstreamRejected` citing the rule. Network and HTTP failures
raise :class:`UpstreamError`. No token is sent unless one is given explicitly
(hub-protocol.md §8: the stored token would otherwise go to any endpoint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlwarden.airlock import rules as R
from mlwarden.report.rules import Rule
from mlwarden.store.errors import InvalidName
from mlwarden.store.names import check_file_path, check_repo_id

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_FILES = 100_000
DEFAULT_ENDPOINT = "https://huggingface.co"


class UpstreamError(Exception):
    """The upstream could not be reached or refused the request."""


class UpstreamRejected(Exception):
    """Upstream metadata is hostile or inconsistent; the pull must stop."""

    def __init__(self, rule: Rule, message: str, path: str | None = None) -> None:
        super().__init__(f"{rule.id}: {message}")
        self.rule = rule
        self.message = message
        self.path = path


@dataclass(frozen=True)
class Resolved:
    repo_id: str
    revision: str  # as requested
    commit: str
    ref: str | None  # branch or tag name, None when a commit id was requested
    ref_kind: str  # branch | tag | commit
    created_at: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    git_oid: str  # the tree oid: git blob sha1 (of the LFS pointer for LFS files)
    sha256: str | None  # LFS oid; None for regular git files

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """What the resolve endpoint must send as (X-Linked-)ETag."""
        return self.sha256 if self.sha256 is not None else self.git_oid


def check_commit(value: Any, where: str) -> str:
    if not isinstance(value, str) or not HEX40.fullmatch(value):
        raise UpstreamRejected(R.BAD_COMMIT, f"{where} gave commit id {value!r}")
    return value


def _wrap(exc: Exception, what: str) -> UpstreamError:
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return UpstreamError(f"{what}: repository is gated (access denied)")
    if isinstance(exc, RepositoryNotFoundError):
        return UpstreamError(f"{what}: repository not found (or no access)")
    if isinstance(exc, RevisionNotFoundError):
        return UpstreamError(f"{what}: revision not found")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UpstreamError(f"{what}: {type(exc).__name__}: {text[:300]}")


class Upstream:
    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        from huggingface_hub import HfApi

        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.token: str | bool = token if token else False  # False: never an implicit token
        self.api = HfApi(endpoint=self.endpoint, token=self.token)

    def resolve(self, repo_id: str, revision: str | None) -> Resolved:
        try:
            check_repo_id(repo_id)
        except InvalidName as exc:
            raise UpstreamError(str(exc)) from None
        rev = revision or "main"
        try:
            info = self.api.model_info(repo_id, revision=rev)
        except Exception as exc:
            raise _wrap(exc, f"{repo_id}@{rev}") from None
        commit = check_commit(getattr(info, "sha", None), "repository info")
        created = getattr(info, "created_at", None)
        if HEX40.fullmatch(rev):
            if commit != rev:
                raise UpstreamRejected(R.COMMIT_MISMATCH, f"asked for commit {rev}, repository "
                                       f"info answered for {commit}")
            return Resolved(repo_id, rev, commit, None, "commit", str(created or "") or None)
        kind = "branch"
        try:
            refs = self.api.list_repo_refs(repo_id)
        except Exception as exc:
            raise _wrap(exc, f"{repo_id}: refs") from None
        for k, items in (("branch", refs.branches), ("tag", refs.tags)):
            for r in items:
                if r.name == rev:
                    kind = k
                    target = check_commit(r.target_commit, f"refs ({k} {rev})")
                    if target != commit:
                        raise UpstreamRejected(
                            R.COMMIT_MISMATCH, f"{k} {rev} points at {target} in the refs "
                            f"list but repository info says {commit}")
        return Resolved(repo_id, rev, commit, rev, kind, str(created or "") or None)

    def refs(self, repo_id: str) -> dict[str, tuple[str, str]]:
        """name -> (kind, commit) for every branch and tag."""
        try:
            refs = self.api.list_repo_refs(repo_id)
        except Exception as exc:
            raise _wrap(exc, f"{repo_id}: refs") from None
        out: dict[str, tuple[str, str]] = {}
        for k, items in (("branch", refs.branches), ("tag", refs.tags)):
            for r in items:
                out[r.name] = (k, check_commit(r.target_commit, f"refs ({k} {r.name})"))
        return out

    def list_files(self, repo_id: str, commit: str) -> list[RemoteFile]:
        from huggingface_hub.hf_api import RepoFile

        out: dict[str, RemoteFile] = {}
        try:
            entries = self.api.list_repo_tree(repo_id, revision=commit, recursive=True)
            for e in entries:
                if not isinstance(e, RepoFile):
                    continue
                if len(out) >= MAX_FILES:
                    raise UpstreamRejected(R.BAD_METADATA, f"more than {MAX_FILES} files")
                f = _remote_file(e)
                if f.path in out:
                    raise UpstreamRejected(R.BAD_METADATA, f"{f.path!r} listed twice", f.path)
                out[f.path] = f
        except UpstreamRejected:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpstreamRejected(R.BAD_METADATA, f"malformed tree listing: "
                                   f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise _wrap(exc, f"{repo_id}@{commit[:12]}: tree") from None
        if not out:
            raise UpstreamRejected(R.BAD_METADATA, "the repository lists no files")
        return sorted(out.values(), key=lambda f: f.path)


def _remote_file(e: Any) -> RemoteFile:
    path = e.path
    if not isinstance(path, str):
        raise UpstreamRejected(R.BAD_METADATA, f"file name {path!r} is not a string")
    try:
        check_file_path(path)
    except InvalidName as exc:
        raise UpstreamRejected(R.UNSAFE_PATH, str(exc), path) from None
    size = e.size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UpstreamRejected(R.BAD_METADATA, f"{path}: size {size!r} is not a byte count",
                               path)
    oid = e.blob_id
    if not isinstance(oid, str) or not HEX40.fullmatch(oid):
        raise UpstreamRejected(R.BAD_METADATA, f"{path}: oid {oid!r} is not a git sha1", path)
    sha256 = None
    if e.lfs is not None:
        sha256 = e.lfs.sha256
        if not isinstance(sha256, str) or not HEX64.fullmatch(sha256):
            raise UpstreamRejected(R.BAD_METADATA, f"{path}: LFS oid {sha256!r} is not a "
                                   "sha256", path)
        if e.lfs.size != size:
            raise UpstreamRejected(R.SIZE_MISMATCH, f"{path}: tree size {size} but LFS size "
                                   f"{e.lfs.size}", path)
    return RemoteFile(path, size, oid, sha256)
