"""Scanning remote trees: the same engine and readers, fed range-read Sources.

Per file: a verdict cache answers when the endpoint published the file's sha256 and the
cache knows it (zero bytes read); otherwise the file is scanned through range reads.
Files are scanned by a pool of threads (the work is network round trips); repository
checks then run over the tree like they do over a local directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from mlwarden.report.model import FileResult, Finding, Report, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan import sniff as fmt
from mlwarden.scan.engine import (
    READ_ERROR,
    InputError,
    RepositoryRoot,
    ScanOptions,
    repository_checks,
    scan_local,
    scan_source,
)
from mlwarden.scan.source import Source, TooLarge, release, spool_stream
from mlwarden.scan.sources.base import RemoteFile, RemoteInputError, RemoteTree
from mlwarden.scan.sources.ranges import ReadLog

DEFAULT_THREADS = 8
# Formats whose reader needs the whole file at hand (h5py seeks everywhere): fetched
# whole, within the member bound, and scanned from a temporary file.
WHOLE_FILE_FORMATS = frozenset({fmt.HDF5})

HASH_MISMATCH = rule(
    "remote-hash-mismatch", Verdict.UNSCANNABLE, Severity.HIGH,
    "The bytes served do not match the published sha256",
    "The whole remote file was read (--hash, or a small file) and its sha256 differs from "
    "the endpoint's LFS metadata, or its git blob sha1 from the tree's oid: the endpoint "
    "serves other bytes than it describes. The scan's view of the file cannot be tied to "
    "what a client downloads.")


class VerdictStore(Protocol):
    """What the remote scan needs of a verdict cache (``mlwarden.scancache``)."""

    def get(self, sha256: str, rel_path: str, display: str,
            trust: Iterable[str] = ...) -> list[FileResult] | None: ...

    def put(self, sha256: str, rel_path: str, display: str, results: Sequence[FileResult],
            origin: str = ...) -> None: ...


@dataclass(frozen=True)
class TreeScan:
    tree: RemoteTree
    results: tuple[FileResult, ...]
    cached: frozenset[str]  # relative paths answered from the verdict cache
    logs: dict[str, ReadLog] = field(default_factory=dict)  # relative path -> ranges read
    bytes_read: int = 0
    requests: int = 0
    seconds: float = 0.0


def scan_mixed(paths: Sequence[str], options: ScanOptions,
               progress: Callable[[int, int], None] | None, started: float) -> Report:
    """Local paths and remote URLs in one report, in argument order."""
    from mlwarden.scan.sources import is_remote, open_remote

    groups: list[tuple[bool, list[str]]] = []
    for p in paths:
        remote = is_remote(p)
        if groups and groups[-1][0] == remote and not remote:
            groups[-1][1].append(p)
        else:
            groups.append((remote, [p]))
    trees: dict[str, RemoteTree] = {}
    for remote, args in groups:
        if remote:
            try:
                trees[args[0]] = open_remote(args[0])
            except RemoteInputError as exc:
                raise InputError(str(exc)) from None
    results: list[FileResult] = []
    meta: dict[str, object] = {}
    remotes: list[dict[str, object]] = []
    for remote, args in groups:
        if not remote:
            results.extend(scan_local(args, options, progress))
            continue
        tree = trees[args[0]]
        done = scan_tree(tree, options, progress=progress)
        results.extend(done.results)
        remotes.append(describe(done))
    meta["remote"] = remotes
    return Report("scan", tuple(results), time.perf_counter() - started, meta)


def describe(done: TreeScan) -> dict[str, object]:
    t = done.tree
    d: dict[str, object] = {"source": t.given, "root": t.display_root, "files": len(t.files),
                            "total_bytes": t.total_size, "bytes_read": done.bytes_read,
                            "requests": done.requests, "cached_files": len(done.cached)}
    if t.commit is not None:
        d.update({"repo": t.repo_id, "revision": t.revision, "commit": t.commit})
    return d


def scan_tree(tree: RemoteTree, options: ScanOptions | None = None, *,
              cache: VerdictStore | None = None, trust: Iterable[str] | None = None,
              progress: Callable[[int, int], None] | None = None,
              threads: int = 0, record: bool = True) -> TreeScan:
    """Scan every file of ``tree``; repository checks run when the tree is a whole
    repository. ``trust`` lists the cache origins whose entries are accepted (default:
    verified entries and those recorded from this very endpoint). ``record=False`` leaves
    the cache unwritten (the airlock writes verified entries once it has the bytes)."""
    options = options or ScanOptions()
    started = time.perf_counter()
    trust = tuple(trust) if trust is not None else ("verified", tree.endpoint)
    files = list(tree.files)
    total = len(files)
    by_path: dict[str, list[FileResult]] = {}
    cached: set[str] = set()
    todo: list[RemoteFile] = []
    for f in files:
        got = None
        key = cache_key(f)
        if cache is not None and key is not None:
            got = cache.get(key, f.path, tree.display(f), trust)
        if got is None:
            todo.append(f)
        else:
            if f.sha256 is not None:
                got[0] = replace(got[0], sha256=f.sha256, sha256_source=f.sha256_source)
            elif got[0].sha256 is not None:  # hashed whole when cached, found by git oid
                got[0] = replace(got[0], sha256_source="verdict-cache")
            by_path[f.path] = got
            cached.add(f.path)
    done = len(cached)
    if progress and done:
        progress(done, total)
    n = threads or (options.workers if options.workers > 0 else DEFAULT_THREADS)

    def one(f: RemoteFile) -> tuple[RemoteFile, list[FileResult]]:
        return f, _scan_file(tree, f, options)

    with contextlib.ExitStack() as stack:
        scanned: Iterable[tuple[RemoteFile, list[FileResult]]] = map(one, todo)
        if len(todo) > 1 and n > 1:  # one file alone is not worth starting a thread
            pool = stack.enter_context(ThreadPoolExecutor(
                max_workers=min(n, len(todo)), thread_name_prefix="remote-scan"))
            scanned = pool.map(one, todo)
        for f, res in scanned:
            by_path[f.path] = res
            if record and cache is not None and not _read_failed(res):
                for k, origin in _cache_entries(tree, f, res[0]):
                    cache.put(k, f.path, tree.display(f), res, origin)
            done += 1
            if progress:
                progress(done, total)
    results = [r for f in files for r in by_path[f.path]]
    if tree.whole_repository:
        results = repository_checks([RepositoryRoot(_nowhere(), tree.display_root, tree)],
                                    results)
    logs = tree.read_logs()
    return TreeScan(tree, tuple(results), frozenset(cached), logs, tree.stats.bytes_read,
                    tree.stats.requests, time.perf_counter() - started)


def _nowhere() -> Path:
    return Path(os.devnull)  # remote trees have no local root; checks read through the tree


def cache_key(f: RemoteFile) -> str | None:
    """What the cache knows a remote file by before reading it: the published sha256, or
    for a non-LFS Hub file its git blob sha1."""
    if f.sha256 is not None:
        return f.sha256
    return f"git-{f.git_oid}" if f.git_oid else None


def _cache_entries(tree: RemoteTree, f: RemoteFile, own: FileResult) -> list[tuple[str, str]]:
    """(key, origin) pairs to record a scanned file under. A digest computed here from
    the whole content is verified; one only published by the endpoint is trusted as far
    as that endpoint is."""
    out: list[tuple[str, str]] = []
    if own.sha256 is not None:
        out.append((own.sha256, "verified" if own.sha256_source == "computed"
                    else tree.endpoint))
    if f.sha256 is None and f.git_oid:
        whole = tree.blob(f).cache.whole()
        if whole is not None and git_blob_sha1(whole) == f.git_oid:
            out.append((f"git-{f.git_oid}", "verified"))
        elif whole is None:
            out.append((f"git-{f.git_oid}", tree.endpoint))
    return out


def git_blob_sha1(data: bytes) -> str:
    h = hashlib.sha1(b"blob %d\x00" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def _read_failed(results: list[FileResult]) -> bool:
    """Transient failures (network) must not be cached as the file's verdict."""
    return any(f.rule in (READ_ERROR.id, "internal-error") for r in results for f in r.findings)


def _scan_file(tree: RemoteTree, f: RemoteFile, options: ScanOptions) -> list[FileResult]:
    display = tree.display(f)
    try:
        source = tree.source(f)
        head = source.head(fmt.HEAD_BYTES)
    except OSError as exc:
        finding = READ_ERROR.finding(f"remote read failed: {exc}")
        return [FileResult(display, "unknown", finding.verdict, f.size, f.sha256,
                           (finding,), sha256_source=f.sha256_source)]
    spooled: Source | None = None
    if fmt.sniff(head, f.size) in WHOLE_FILE_FORMATS:
        try:
            with source.open() as fh:
                spooled = spool_stream(fh, display, options.limits.max_member_bytes)
            source = spooled
        except (OSError, TooLarge):
            pass  # the reader reports what it can of the range-read source
    try:
        results = scan_source(source, options.limits, want_hash=False)
    finally:
        if spooled is not None:
            release(spooled)
    own = results[0]
    sha, label = f.sha256, f.sha256_source
    extra: tuple[Finding, ...] = ()
    whole = tree.blob(f).cache.whole() if f.size <= options.limits.max_text_bytes else None
    if options.hash == "always" or whole is not None:
        try:
            computed = hashlib.sha256(whole).hexdigest() if whole is not None \
                else _hash_remote(tree, f)
        except OSError as exc:
            extra = (READ_ERROR.finding(f"--hash: remote read failed: {exc}"),)
        else:
            if sha is not None and computed != sha:
                extra = (HASH_MISMATCH.finding(
                    f"sha256 of the served bytes is {computed}, the {label} says {sha}"),)
            elif sha is None and whole is not None and f.git_oid \
                    and git_blob_sha1(whole) != f.git_oid:
                extra = (HASH_MISMATCH.finding(
                    f"git blob sha1 of the served bytes is {git_blob_sha1(whole)}, the "
                    f"tree's oid says {f.git_oid}"),)
            sha, label = computed, "computed"
    findings = own.findings + extra
    own = replace(own, sha256=sha, sha256_source=label if sha is not None else None,
                  findings=findings,
                  verdict=Verdict.worst([own.verdict, *(x.verdict for x in extra)]))
    return [own, *results[1:]]


def _hash_remote(tree: RemoteTree, f: RemoteFile) -> str:
    h = hashlib.sha256()
    stream = tree.blob(f).stream()
    while block := stream.read():
        h.update(block)
    return h.hexdigest()
