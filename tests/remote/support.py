"""Helpers for the remote-scan and fleet tests: put any tree (malicious files included)
into a store as an approved commit, and serve it with the real `mlwarden serve` app."""

from __future__ import annotations

import os
from pathlib import Path

from mlwarden.store import FileEntry, Store
from mlwarden.store.hashing import copy_and_hash


def publish(store: Store, local_dir: Path, repo: str, branch: str = "main",
            tags: tuple[str, ...] = ()) -> str:
    """Commit every file under ``local_dir`` as ``repo`` without the import policy (the
    tests serve hostile content on purpose); returns the commit id."""
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    entries: list[FileEntry] = []
    with store.staging() as stage, store.ingest() as session:
        for p in files:
            rel = p.relative_to(local_dir).as_posix()
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "rb") as src, open(dest, "wb") as out:
                digest = copy_and_hash(src, out, rel)
                out.flush()
                os.fsync(out.fileno())
            d = session.put_file(dest, rel, move=True, known=digest)
            entries.append(FileEntry(rel, d.sha256, d.size, d.lfs, d.git_oid))
        commit = store.commit_files(entries, repo, branch=branch, message=f"test {repo}",
                                    author="tests", tags=tags, approve=True, session=session)
    return commit.id
