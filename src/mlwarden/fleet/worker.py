"""Scanning one repository inside a fleet worker (a local process or a Ray task).

The worker opens the verdict cache and installs the shared limiter once per process, then
per repository: metadata, cache lookups by published sha256, range-read scans of the rest,
repository checks; it returns plain rows. A repository whose reads fail is raised as
:class:`RetryRepo` so the coordinator tries again; on the last attempt it is returned as
``unscannable`` with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mlwarden.report.model import Verdict

_cache: dict[str, Any] = {}
_configured: list[object] = []


class RetryRepo(Exception):
    """A transient failure: scan this repository again later."""


@dataclass(frozen=True)
class WorkerConfig:
    cache_url: str | None  # None: no verdict cache
    limiter: Any = None  # shared Limiter (manager proxy or Ray actor adapter); None: local
    politeness: Any = None
    hash: str = "never"  # "always" reads whole files (--hash)


@dataclass(frozen=True)
class RepoOutcome:
    key: str
    repo: dict[str, Any]
    files: list[dict[str, Any]] = field(default_factory=list)


def _setup(cfg: WorkerConfig) -> Any:
    from mlwarden.scan.sources import polite

    if not _configured or _configured[0] is not cfg.limiter:
        polite.configure(cfg.limiter, cfg.politeness)
        _configured[:] = [cfg.limiter]
    if cfg.cache_url is None:
        return None
    cache = _cache.get(cfg.cache_url)
    if cache is None:
        from mlwarden.scancache import ScanCache

        cache = _cache[cfg.cache_url] = ScanCache(cfg.cache_url)
    return cache


def scan_repo(task: Any, attempt: int, final: bool, cfg: WorkerConfig) -> RepoOutcome:
    """Scan ``task`` (a RepoTask); ``final`` turns a transient failure into an
    ``unscannable`` outcome instead of a retry."""
    from mlwarden.scan.engine import ScanOptions
    from mlwarden.scan.sources import RemoteInputError, open_remote
    from mlwarden.scan.sources.polite import GaveUp
    from mlwarden.scan.sources.scanning import scan_tree

    started = time.time()
    _test_kill_hook()
    cache = _setup(cfg)
    base = {"repo": task.key, "url": task.url, "endpoint": task.endpoint, "attempts": attempt}
    try:
        tree = open_remote(task.url, task.endpoint)
    except RemoteInputError as exc:
        transient = isinstance(exc.__cause__, GaveUp) or "gave up" in str(exc)
        if transient and not final:
            raise RetryRepo(str(exc)) from None
        return _failed(base, str(exc), started)
    except GaveUp as exc:
        if not final:
            raise RetryRepo(str(exc)) from None
        return _failed(base, str(exc), started)
    try:
        done = scan_tree(tree, ScanOptions(hash=cfg.hash), cache=cache)
    finally:
        tree.release()
    read_errors = sorted({r.path for r in done.results for f in r.findings
                          if f.rule in ("read-error",)})
    if read_errors and not final:
        raise RetryRepo(f"read errors in {len(read_errors)} file(s), e.g. {read_errors[0]}")
    return _rows(base, done, started, read_errors)


def _test_kill_hook() -> None:
    """Test-only: ``MLWARDEN_TEST_KILL_WORKER=<marker file>`` makes the first job that sees
    no marker create it and SIGKILL its own worker, as an operator or the OOM killer would."""
    marker = os.environ.get("MLWARDEN_TEST_KILL_WORKER")
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _failed(base: dict[str, Any], reason: str, started: float) -> RepoOutcome:
    return RepoOutcome(base["repo"], {
        **base, "commit": None, "status": "unscannable", "verdict": Verdict.UNSCANNABLE.value,
        "reason": reason[:1000], "files": 0, "total_bytes": 0, "bytes_read": 0,
        "requests": 0, "cached_files": 0, "seconds": round(time.time() - started, 3),
        "scanner": _scanner(), "finished_at": time.time(), "verdicts": "{}"})


def _scanner() -> str:
    from mlwarden.scancache import scanner_key

    return scanner_key()


def _rows(base: dict[str, Any], done: Any, started: float,
          read_errors: list[str]) -> RepoOutcome:
    tree = done.tree
    prefix = tree.display_root + "/"
    per: dict[str, dict[str, Any]] = {}
    for r in done.results:
        top = r.path.split("!", 1)[0]
        rel = top[len(prefix):] if top.startswith(prefix) else ""
        row = per.get(rel)
        if row is None:
            row = per[rel] = {"repo": base["repo"], "path": rel, "format": r.format,
                              "verdict": r.verdict.value, "size": r.size, "sha256": r.sha256,
                              "sha256_source": r.sha256_source, "cached": rel in done.cached,
                              "rules": []}
        else:
            row["verdict"] = Verdict.worst([Verdict(row["verdict"]), r.verdict]).value
        row["rules"].extend(f.rule for f in r.findings if f.verdict is not Verdict.CLEAN
                            or f.rule.startswith("repo-"))
    files = []
    for row in per.values():
        row["rules"] = json.dumps(sorted(set(row["rules"])))
        files.append(row)
    files.sort(key=lambda x: x["path"])
    verdict = Verdict.worst(Verdict(f["verdict"]) for f in files) if files else Verdict.CLEAN
    counts = Counter(f["verdict"] for f in files)
    return RepoOutcome(base["repo"], {
        **base, "commit": tree.commit, "status": "scanned" if not read_errors else
        "unscannable", "verdict": verdict.value if not read_errors
        else Verdict.worst([verdict, Verdict.UNSCANNABLE]).value,
        "reason": f"read errors after {base['attempts']} attempt(s): "
                  f"{', '.join(read_errors[:5])}" if read_errors else None,
        "files": len(tree.files), "total_bytes": tree.total_size,
        "bytes_read": done.bytes_read, "requests": done.requests,
        "cached_files": len(done.cached), "seconds": round(time.time() - started, 3),
        "scanner": _scanner(), "finished_at": time.time(),
        "verdicts": json.dumps(dict(sorted(counts.items())))}, files)
