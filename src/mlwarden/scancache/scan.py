"""Scan a directory of files whose sha256 is already known, through the scan cache.

Only cache misses reach the scanner; repository-level checks (remote code, shard indexes,
pickle twins) always run, because they depend on the whole tree, not on one file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlwarden.report.model import FileResult, Report
from mlwarden.scancache.cache import ScanCache


@dataclass(frozen=True)
class CachedScan:
    report: Report
    cached: frozenset[str]  # repository paths answered from the cache


def _group(results: Sequence[FileResult]) -> list[list[FileResult]]:
    """Split scanner output into one group per top-level file (its members follow it)."""
    groups: list[list[FileResult]] = []
    for r in results:
        if r.parent is None or not groups:
            groups.append([r])
        else:
            groups[-1].append(r)
    return groups


def scan_tree(root: Path, files: Sequence[tuple[str, str]], display_root: str,
              cache: ScanCache | None) -> CachedScan:
    """Scan ``root/rel`` for each (rel, sha256); results are labelled ``display_root/rel``."""
    from mlwarden.scan.engine import RepositoryRoot, ScanOptions, repository_checks, scan_paths

    started = time.perf_counter()
    by_rel: dict[str, list[FileResult]] = {}
    hits: set[str] = set()
    misses: list[tuple[str, str]] = []
    for rel, sha in files:
        display = os.path.join(display_root, rel)
        got = cache.get(sha, rel, display) if cache is not None else None
        if got is None:
            misses.append((rel, sha))
        else:
            by_rel[rel] = got
            hits.add(rel)
    if misses:
        report = scan_paths([str(root / rel) for rel, _ in misses], ScanOptions(hash="never"))
        for (rel, sha), group in zip(misses, _group(report.files), strict=True):
            raw = str(root / rel)
            display = os.path.join(display_root, rel)

            def fix(p: str | None, raw: str = raw, display: str = display) -> str | None:
                return display + p[len(raw):] if p is not None and p.startswith(raw) else p

            group = [replace(r, path=fix(r.path) or r.path, parent=fix(r.parent)) for r in group]
            group[0] = replace(group[0], sha256=sha)
            if cache is not None:
                cache.put(sha, rel, display, group)
            by_rel[rel] = group
    results = [r for rel, _ in files for r in by_rel[rel]]
    results = repository_checks([RepositoryRoot(root, display_root)], results)
    return CachedScan(Report("pull", tuple(results), time.perf_counter() - started),
                      frozenset(hits))
