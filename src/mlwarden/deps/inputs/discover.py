"""Find dependency inputs under a path and dispatch each to its parser (by file name: these
are text formats with fixed names, unlike model files which are sniffed by content)."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path

from mlwarden.deps.inputs.config import parse_pip_conf
from mlwarden.deps.inputs.locks import parse_poetry_lock, parse_pylock, parse_uv_lock
from mlwarden.deps.inputs.pyproject import parse_pyproject, parse_uv_toml
from mlwarden.deps.inputs.requirements import parse_requirements
from mlwarden.deps.model import Parsed

MAX_FILES_WALKED = 200_000
_SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox",
              ".nox", "site-packages", ".mypy_cache", ".ruff_cache", ".pytest_cache",
              "build", "dist", ".eggs"}

Parser = Callable[[Path, Path], Parsed]


def _reqs(path: Path, root: Path) -> list[Parsed]:
    return parse_requirements(path, root,
                              constraint=path.name.lower().startswith("constraints"))


_PATTERNS: list[tuple[str, Parser | None]] = [
    ("pyproject.toml", parse_pyproject),
    ("uv.lock", parse_uv_lock),
    ("poetry.lock", parse_poetry_lock),
    ("pylock.toml", parse_pylock),
    ("pylock.*.toml", parse_pylock),
    ("pip.conf", parse_pip_conf),
    ("pip.ini", parse_pip_conf),
    ("uv.toml", parse_uv_toml),
    ("requirements*.txt", None),
    ("constraints*.txt", None),
]


class DiscoveryError(Exception):
    pass


def kind_of(path: Path) -> str | None:
    name = path.name.lower()
    for pattern, _ in _PATTERNS:
        if fnmatch.fnmatch(name, pattern):
            return pattern
    if path.suffix == ".txt" and path.parent.name.lower() in ("requirements", "requirements.d"):
        return "requirements*.txt"
    return None


def parse_file(path: Path, root: Path) -> list[Parsed]:
    kind = kind_of(path) or ("requirements*.txt" if path.suffix in (".txt", ".in") else None)
    if kind is None:
        raise DiscoveryError(f"{path}: not a recognised dependency input")
    parser = dict(_PATTERNS)[kind]
    return _reqs(path, root) if parser is None else [parser(path, root)]


def discover(target: Path) -> list[Parsed]:
    """Parse every dependency input at or under ``target``, each file once."""
    if not target.exists():
        raise DiscoveryError(f"{target}: no such file or directory")
    if target.is_file():
        return parse_file(target, target.parent)
    found: list[Path] = []
    walked = 0
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS
                             and not os.path.islink(os.path.join(dirpath, d)))
        for fname in sorted(filenames):
            walked += 1
            if walked > MAX_FILES_WALKED:
                raise DiscoveryError(f"{target}: more than {MAX_FILES_WALKED} files")
            p = Path(dirpath, fname)
            if kind_of(p) is not None and p.is_file() and not p.is_symlink():
                found.append(p)
    results: list[Parsed] = []
    done: set[str] = set()
    for p in found:
        if str(p.resolve()) in done:
            continue
        for parsed in parse_file(p, target):
            if parsed.path in {r.path for r in results}:
                continue
            results.append(parsed)
        done.add(str(p.resolve()))
    return results
