"""``mlwarden import``: stage, scan, apply policy, then promote into the store.

The scanner reads the staged copy inside the store, never the caller's directory, so the
bytes that were judged are exactly the bytes that get promoted (no swap between the scan
and the copy).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlwarden.report.model import FileResult, Report, Verdict
from mlwarden.store import Commit, Store, StoreError
from mlwarden.store.hashing import FileDigest, copy_and_hash
from mlwarden.store.model import FileEntry
from mlwarden.store.names import check_ref_name, check_repo_id
from mlwarden.store.store import list_tree
from mlwarden.util.actor import default_actor

# Policy name -> verdicts that refuse the import.
POLICIES: dict[str, frozenset[Verdict]] = {
    "default": frozenset({Verdict.MALICIOUS, Verdict.UNSCANNABLE}),
    "strict": frozenset({Verdict.MALICIOUS, Verdict.UNSCANNABLE, Verdict.SUSPICIOUS}),
    "malicious-only": frozenset({Verdict.MALICIOUS}),
}


@dataclass(frozen=True)
class ImportResult:
    report: Report
    policy: str
    blocked: tuple[FileResult, ...]
    commit: Commit | None  # None when the policy refused the directory

    @property
    def admitted(self) -> bool:
        return self.commit is not None


def _relabel(report: Report, staged: str, shown: str) -> Report:
    """Report paths as the user named them, not as staged inside the store."""

    def fix(p: str | None) -> str | None:
        return shown + p[len(staged):] if p is not None and p.startswith(staged) else p

    files = tuple(replace(f, path=fix(f.path) or f.path, parent=fix(f.parent))
                  for f in report.files)
    return replace(report, command="import", files=files)


def import_directory(
    store: Store, local_dir: str | os.PathLike[str], repo: str, *, branch: str = "main",
    message: str = "", tags: Sequence[str] = (), policy: str = "default",
    approve: bool = False, author: str | None = None,
) -> ImportResult:
    check_repo_id(repo)
    check_ref_name(branch)
    for t in tags:
        check_ref_name(t)
    if policy not in POLICIES:
        raise StoreError(f"unknown policy {policy!r} (choose from {', '.join(POLICIES)})")
    source = Path(local_dir)
    files = list_tree(source)
    from mlwarden.scan.engine import ScanOptions, scan_paths

    with store.staging() as stage:
        digests: dict[str, FileDigest] = {}
        for rel, local in files:
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(local, "rb") as src, open(dest, "wb") as out:
                    digests[rel] = copy_and_hash(src, out, rel)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                raise StoreError(f"{local}: {exc.strerror or exc}") from exc
        report = _relabel(scan_paths([str(stage)], ScanOptions()), str(stage), str(source))
        refused = POLICIES[policy]
        blocked = tuple(f for f in report.files if f.verdict in refused)
        if blocked:
            return ImportResult(report, policy, blocked, None)
        entries: list[FileEntry] = []
        with store.ingest() as session:
            for rel, _ in files:
                d = session.put_file(stage / rel, rel, move=True, known=digests[rel])
                entries.append(FileEntry(rel, d.sha256, d.size, d.lfs, d.git_oid))
            summary: dict[str, object] = {"policy": policy, **report.summary()}
            commit = store.commit_files(
                entries, repo, branch=branch, message=message or f"import {source.name}",
                author=author or default_actor(), tags=tags, approve=approve,
                scan_verdict=report.verdict.value, scan_summary=summary, session=session)
    return ImportResult(report, policy, (), commit)
