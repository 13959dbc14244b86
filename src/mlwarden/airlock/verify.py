"""``verify``: re-hash the store against the manifest, and optionally ask upstream whether
pinned refs moved or pinned content changed. Every mismatch is a security event.

Hashing runs on threads: hashlib releases the GIL on large updates, so N threads hash N
files at disk/memory speed. Each distinct blob is hashed once, however many models share it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlwarden.airlock import rules as R
from mlwarden.airlock.upstream import RemoteFile, Upstream, UpstreamError, UpstreamRejected
from mlwarden.manifest import Manifest, ModelEntry
from mlwarden.report.model import FileResult, Finding, Report, Verdict
from mlwarden.store import FileEntry, Store, StoreError
from mlwarden.store.blobs import BlobNotFound, hash_blob

BUF = 4 << 20


@dataclass(frozen=True)
class VerifyResult:
    report: Report
    files_checked: int
    bytes_hashed: int
    seconds: float

    @property
    def events(self) -> tuple[Finding, ...]:
        return tuple(f for r in self.report.files for f in r.findings
                     if f.verdict is not Verdict.CLEAN)

    @property
    def throughput(self) -> float:
        return self.bytes_hashed / self.seconds if self.seconds > 0 else 0.0


def sha256_path(path: Path) -> tuple[str, int]:
    """sha256 and byte count of a file, read in large chunks into one reused buffer."""
    h = hashlib.sha256()
    buf = bytearray(BUF)
    view = memoryview(buf)
    n_total = 0
    with open(path, "rb", buffering=0) as fh:
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            n_total += n
    return h.hexdigest(), n_total


def _label(model: str, e: ModelEntry) -> str:
    return f"{model}@{e.commit[:12]}"


def verify(manifest: Manifest, store: Store, *, workers: int = 0, upstream: bool = False,
           endpoint: str | None = None, token: str | None = None) -> VerifyResult:
    started = time.perf_counter()
    model_findings: dict[str, list[Finding]] = defaultdict(list)
    jobs: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # blob -> (label, sha, size)
    store_files: dict[str, dict[str, FileEntry]] = {}
    for model in sorted(manifest.models):
        e = manifest.models[model]
        label = _label(model, e)
        try:
            commit = store.commit(model, e.commit)
        except StoreError:
            model_findings[label].append(R.MISSING.finding(
                f"commit {e.commit} of {model} is not in the store"))
            continue
        if not commit.approved:
            model_findings[label].append(R.NOT_APPROVED.finding(
                f"commit {e.commit} is recorded but not approved for serving"))
        stored = {f.path: f for f in store.files(model, e.commit)}
        store_files[model] = stored
        for path in sorted(set(stored) ^ set(e.files)):
            where = "store" if path in stored else "manifest"
            model_findings[label].append(R.STORE_MISMATCH.finding(
                f"{path} is listed only in the {where}"))
        for path, mf in sorted(e.files.items()):
            s = stored.get(path)
            if s is not None and (s.sha256 != mf.sha256 or s.size != mf.size):
                model_findings[label].append(R.STORE_MISMATCH.finding(
                    f"{path}: store records sha256 {s.sha256[:16]} / {s.size} bytes, the "
                    f"manifest {mf.sha256[:16]} / {mf.size} bytes"))
            jobs[mf.sha256].append((f"{label}/{path}", mf.sha256, mf.size))

    def check(blob: str) -> tuple[str, str | None, int, str | None]:
        local = store.blobs.local_path(blob)
        try:
            if local is not None:  # local files: one reused buffer, sequential readahead
                digest, n = sha256_path(local)
            else:
                got = hash_blob(store.blobs, blob)
                digest, n = got.sha256, got.size
        except (FileNotFoundError, BlobNotFound):
            return blob, None, 0, "blob is missing from the store"
        except OSError as exc:
            return blob, None, 0, f"cannot read blob: {exc.strerror or exc}"
        except StoreError as exc:
            return blob, None, 0, f"cannot read blob: {exc}"
        return blob, digest, n, None

    n_workers = workers or min(32, (os.cpu_count() or 1))
    files: list[FileResult] = []
    hashed = 0
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="verify") as pool:
        for blob, digest, n, error in pool.map(check, list(jobs)):
            hashed += n
            for display, sha, size in jobs[blob]:
                if error is not None:
                    f = R.MISSING.finding(f"{error}: sha256 {blob}")
                elif digest != sha or n != size:
                    f = R.HASH_CHANGED.finding(
                        f"sha256 {digest} / {n} bytes in the store, manifest pins {sha} / "
                        f"{size} bytes")
                else:
                    f = R.VERIFY_OK.finding(f"sha256 {sha[:16]}... matches")
                files.append(FileResult(display, "blob", f.verdict, n if digest else None,
                                        digest, (f,)))
    if upstream:
        for model in sorted(manifest.models):
            e = manifest.models[model]
            model_findings[_label(model, e)].extend(
                _check_upstream(model, e, store_files.get(model, {}), endpoint, token))
    for label in sorted(model_findings):
        fs = tuple(model_findings[label])
        files.append(FileResult(label, "model", Verdict.worst(f.verdict for f in fs), None,
                                None, fs))
    files.sort(key=lambda r: r.path)
    elapsed = time.perf_counter() - started
    report = Report("verify", tuple(files), elapsed,
                    {"bytes_hashed": hashed, "workers": n_workers})
    return VerifyResult(report, sum(len(v) for v in jobs.values()), hashed, elapsed)


def _diff(e: ModelEntry, stored: dict[str, FileEntry], remote: list[RemoteFile]) -> list[str]:
    """Human-readable differences between the pinned files and an upstream listing."""
    by_path = {f.path: f for f in remote}
    out: list[str] = []
    for path, mf in sorted(e.files.items()):
        rf = by_path.get(path)
        s = stored.get(path)
        if rf is None:
            out.append(f"{path} removed")
        elif rf.size != mf.size:
            out.append(f"{path} size {mf.size} -> {rf.size}")
        elif rf.sha256 is not None and rf.sha256 != mf.sha256:
            out.append(f"{path} sha256 {mf.sha256[:12]} -> {rf.sha256[:12]}")
        elif rf.sha256 is None and s is not None and s.git_oid != rf.git_oid:
            out.append(f"{path} git oid {s.git_oid[:12]} -> {rf.git_oid[:12]}")
    out += [f"{p} added" for p in sorted(set(by_path) - set(e.files))]
    return out


def _check_upstream(model: str, e: ModelEntry, stored: dict[str, FileEntry],
                    endpoint: str | None, token: str | None) -> list[Finding]:
    out: list[Finding] = []
    up = Upstream(endpoint or e.source, token)
    try:
        if e.ref and e.ref_kind in ("branch", "tag"):
            refs = up.refs(model)
            now = refs.get(e.ref)
            if now is None:
                out.append(R.REF_MOVED.finding(f"{e.ref_kind} {e.ref} no longer exists "
                                               f"upstream (pinned {e.commit})"))
            elif now[1] != e.commit:
                changes = _diff(e, stored, up.list_files(model, now[1]))
                detail = ("; files changed: " + ", ".join(changes[:10])
                          + (" ..." if len(changes) > 10 else "")) if changes else \
                    "; the files are unchanged"
                out.append(R.REF_MOVED.finding(
                    f"{e.ref_kind} {e.ref} now points at {now[1]}, the manifest pins "
                    f"{e.commit}{detail}"))
        try:
            remote = up.list_files(model, e.commit)
        except UpstreamError as exc:
            if "revision not found" in str(exc):
                out.append(R.UPSTREAM_CHANGED.finding(
                    f"pinned commit {e.commit} no longer exists upstream"))
                return out
            raise
        changes = _diff(e, stored, remote)
        if changes:
            out.append(R.UPSTREAM_CHANGED.finding(
                f"at pinned commit {e.commit[:12]} upstream now lists: "
                + ", ".join(changes[:10]) + (" ..." if len(changes) > 10 else "")))
    except UpstreamRejected as exc:
        out.append(R.UPSTREAM_CHANGED.finding(f"hostile upstream metadata: {exc}"))
    except UpstreamError as exc:
        out.append(R.UPSTREAM_ERROR.finding(str(exc)))
    return out
