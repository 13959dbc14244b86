"""The training code: git commit, ref, remote and whether the tree was dirty, read with the
git command line (the same answers a CI checkout gives)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")


@dataclass(frozen=True)
class SourceInfo:
    root: Path
    commit: str
    ref: str | None  # refs/heads/main, refs/tags/v1, or None (detached)
    repository: str | None  # https://github.com/org/repo (no .git, no credentials)
    modified: tuple[str, ...]  # tracked files changed at the start of the run
    tracked: frozenset[str]  # tracked paths, relative to root

    @property
    def uri(self) -> str | None:
        """``git+https://host/org/repo@ref``: the form slsa-verifier compares."""
        if self.repository is None:
            return None
        return f"git+{self.repository}" + (f"@{self.ref}" if self.ref else "")


def _git(cwd: Path, *args: str, timeout: float = 30) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True,
                             timeout=timeout, check=False,
                             env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", "surrogateescape")


def normalize_repository(url: str) -> str:
    """An https URL without credentials, port-free scp syntax, or ``.git``:
    ``git@github.com:org/repo.git`` -> ``https://github.com/org/repo``."""
    u = url.strip()
    u = u.removeprefix("git+")
    m = _SCP.match(u)
    if m and "://" not in u:
        u = f"https://{m.group('host')}/{m.group('path')}"
    u = re.sub(r"^(ssh|git|http)://", "https://", u)
    u = re.sub(r"^https://[^/@]*@", "https://", u)  # drop user:token@
    u = u.rstrip("/").removesuffix(".git")
    return u


def git_source(cwd: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> \
        SourceInfo | None:
    """None when ``cwd`` is not inside a git work tree (or git is missing)."""
    here = Path(cwd)
    top = _git(here, "rev-parse", "--show-toplevel")
    commit = _git(here, "rev-parse", "--verify", "HEAD")
    if top is None or commit is None:
        return None
    root = Path(top.strip())
    ref = (_git(root, "symbolic-ref", "-q", "HEAD") or "").strip() or None
    environ = env if env is not None else os.environ
    # A CI checkout is often detached: the CI names the ref.
    if ref is None and environ.get("GITHUB_REF"):
        ref = environ["GITHUB_REF"]
    elif ref is None and environ.get("CI_COMMIT_TAG"):
        ref = f"refs/tags/{environ['CI_COMMIT_TAG']}"
    elif ref is None and environ.get("CI_COMMIT_BRANCH"):
        ref = f"refs/heads/{environ['CI_COMMIT_BRANCH']}"
    remote = (_git(root, "remote", "get-url", "origin") or "").strip()
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no") or ""
    modified: set[str] = set()
    entries = iter(status.split("\0"))
    for e in entries:
        if len(e) > 3:
            modified.add(e[3:])
            if e[0] in "RC":  # a rename or copy is followed by its original path
                next(entries, None)
    listed = _git(root, "ls-files", "-z") or ""
    return SourceInfo(root, commit.strip(), ref, normalize_repository(remote) if remote else
                      None, tuple(sorted(modified)), frozenset(p for p in listed.split("\0") if p))
