"""The scan engine: walk paths, identify each file by content, dispatch to its reader,
and turn what readers report into per-file results."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlwarden.report.model import FileResult, Finding, Report, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan import shadow
from mlwarden.scan import sniff as fmt
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.readers import get_reader
from mlwarden.scan.source import Source, TooLarge, release

# Files up to this size are hashed by default; bigger ones only with hashing forced,
# because hashing would read tensor bytes the scan itself never needs.
AUTO_HASH_MAX = 64 << 20
# Files up to this size are read once into memory.
SMALL_FILE = 1 << 20

SYMLINK_OUTSIDE = rule(
    "symlink-outside-root",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Symbolic link that points outside the scanned tree",
    "Loaders follow links, so a link to /etc/passwd or ~/.ssh inside a model repository "
    "leaks host files. It is reported and never followed.",
)
SPECIAL_FILE = rule(
    "not-a-regular-file",
    Verdict.UNSCANNABLE,
    Severity.LOW,
    "Not a regular file (FIFO, device or socket)",
    "Reading it could block forever or read a device; it is not opened.",
)
DANGLING_LINK = rule(
    "dangling-symlink",
    Verdict.SUSPICIOUS,
    Severity.LOW,
    "Symbolic link whose target does not exist",
    "A later download or process could create the target; review the link.",
)
READ_ERROR = rule(
    "read-error",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "The file could not be read",
    "Permissions, I/O errors or a file that vanished during the scan.",
)
INTERNAL_ERROR = rule(
    "internal-error",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "The analyser failed on this content",
    "The reader met input it did not expect. The file is reported unscannable rather "
    "than clean; please report the file's shape (never its payload) upstream.",
)
READER_MISSING = rule(
    "reader-missing",
    Verdict.UNSCANNABLE,
    Severity.LOW,
    "No analyser is installed for this format",
    "The format was identified but its analyser is unavailable in this installation.",
)


@dataclass(frozen=True)
class ScanOptions:
    limits: Limits = field(default_factory=Limits)
    workers: int = 0  # 0 = automatic: processes only when there are many files
    hash: str = "auto"  # auto | always | never
    # Pickle knowledge policy: classes admitted by exact name, extra library source roots.
    allow_classes: frozenset[str] = frozenset()
    source_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """One top-level thing to scan: a regular file, or a path reported without reading."""

    path: Path
    display: str
    finding: Finding | None = None  # set when the path is reported but not read
    root: Path | None = None  # the directory argument it was found under


@dataclass(frozen=True)
class RepositoryRoot:
    path: Path
    display: str
    tree: object | None = None  # a repository.TreeReader for remote trees (scan/sources)


class InputError(Exception):
    """A path argument that cannot be scanned at all (missing, unreadable)."""


def collect(paths: Sequence[str]) -> tuple[list[Target], list[RepositoryRoot]]:
    """Expand PATH arguments into targets. Reported paths start with the argument as given."""
    targets: list[Target] = []
    roots: list[RepositoryRoot] = []
    for arg in paths:
        p = Path(arg)
        if not os.path.lexists(p):
            raise InputError(f"{arg}: no such file or directory")
        if p.is_dir():
            roots.append(RepositoryRoot(p, arg))
            targets.extend(_walk(p, arg))
        else:
            targets.append(_classify_entry(p, arg, root=None))
    return targets, roots


def _walk(root: Path, display_root: str) -> Iterator[Target]:
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        # Symlinked directories are not descended into; report them like files.
        for d in list(dirnames):
            if (here / d).is_symlink():
                dirnames.remove(d)
                filenames.append(d)
        for name in sorted(filenames):
            p = here / name
            rel = os.path.relpath(p, root)
            yield _classify_entry(p, os.path.join(display_root, rel), root=real_root)


def _classify_entry(p: Path, display: str, root: Path | None) -> Target:
    try:
        st = os.lstat(p)
    except OSError as exc:
        return Target(p, display, READ_ERROR.finding(f"cannot stat: {exc.strerror}"), root)
    if stat.S_ISLNK(st.st_mode):
        target_text = os.readlink(p)
        try:
            resolved = p.resolve(strict=True)
        except (OSError, RuntimeError):
            return Target(
                p, display, DANGLING_LINK.finding(f"link to missing target {target_text!r}"),
                root,
            )
        if root is not None and not resolved.is_relative_to(root):
            return Target(
                p, display,
                SYMLINK_OUTSIDE.finding(f"link to {target_text!r} resolves outside the tree"),
                root,
            )
        if resolved.is_dir():
            return Target(
                p, display,
                Finding("symlink-directory", Severity.INFO, Verdict.CLEAN,
                        f"link to directory {target_text!r} inside the tree; its files are "
                        "scanned in place"),
                root,
            )
        st = os.stat(p)
    if not stat.S_ISREG(st.st_mode):
        return Target(p, display, SPECIAL_FILE.finding("not a regular file; not opened"), root)
    return Target(p, display, None, root)


# --------------------------------------------------------------------------- scanning


def scan_source(source: Source, limits: Limits, depth: int = 0,
                parent: str | None = None, want_hash: bool = True) -> list[FileResult]:
    """Scan one Source; returns its own result first, then any nested member results."""
    ctx = ScanContext(display_path=source.display_path, limits=limits, depth=depth)
    ctx.scan_nested = lambda src, d: scan_source(src, limits, d, parent=source.display_path,
                                                 want_hash=want_hash)
    digest: str | None = None
    try:
        head = source.head(fmt.HEAD_BYTES)
        ctx.format = fmt.sniff(head, source.size)
        reader = get_reader(ctx.format)
        if reader is None:
            ctx.report(READER_MISSING, f"no analyser installed for {ctx.format} content")
        else:
            reader(source, ctx)
        if ctx.format not in _PICKLE_FORMATS:
            shadow.analyse(source, ctx, head)
        elif ctx.format in _PICKLE_FORMATS and not head.startswith(b"\x80") \
                and fmt._is_text(head):
            _text_reading(source, ctx)
        if want_hash and source.data is not None:
            digest = hashlib.sha256(source.data).hexdigest()
    except TooLarge as exc:
        ctx.limit(str(exc))
    except OSError as exc:
        ctx.report(READ_ERROR, f"read failed: {exc}")
    except RecursionError:
        ctx.report(INTERNAL_ERROR, "content nested too deeply for the analyser")
    except MemoryError:
        ctx.report(INTERNAL_ERROR, "analyser ran out of memory on this content")
    except Exception as exc:
        ctx.report(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    own = FileResult(
        path=source.display_path,
        format=ctx.format,
        verdict=ctx.verdict,
        size=source.size,
        sha256=digest,
        findings=tuple(ctx.findings),
        parent=parent,
    )
    return [own, *ctx.members]


_PICKLE_FORMATS = {"pickle", "pytorch-legacy", "joblib", "dill", "cloudpickle"}
BROKEN_STREAM_RULE = "pickle-broken-stream"


def _text_reading(source: Source, ctx: ScanContext) -> None:
    """Protocol 0/1 pickles are printable text, and crafted Python, JSON or templates can
    parse as a run of pickle opcodes. A loader that picks the file by name reads it as
    text, so analyse that reading too; when it is well-formed code or config, that is what
    the file is, and the pickle reading merely 'breaking' says nothing."""
    from mlwarden.scan.readers.text_file import read_text

    shadow = ScanContext(display_path=ctx.display_path, limits=ctx.limits, depth=ctx.depth)
    shadow.format = fmt.TEXT
    read_text(source, shadow)
    if shadow.format == fmt.TEXT:
        return  # no loader reads it as code or config: the pickle reading stands alone
    parsed = not any(f.verdict is Verdict.UNSCANNABLE for f in shadow.findings)
    if parsed:
        ctx.findings[:] = [f for f in ctx.findings if f.rule != BROKEN_STREAM_RULE]
    ctx.format = shadow.format
    ctx.findings.extend(shadow.findings)


def scan_target(target: Target, options: ScanOptions) -> list[FileResult]:
    if target.finding is not None:
        return [FileResult(target.display, "link" if "link" in target.finding.rule else "special",
                           target.finding.verdict, None, None, (target.finding,))]
    try:
        source = _open_source(target)
    except OSError as exc:
        f = READ_ERROR.finding(f"cannot open: {exc.strerror}")
        return [FileResult(target.display, "unknown", f.verdict, None, None, (f,))]
    try:
        results = scan_source(source, options.limits, want_hash=options.hash != "never")
    finally:
        release(source)
    return _with_hash(results, target.path, options)


def _open_source(target: Target) -> Source:
    """A Source for a regular file; small files are read once, which then serves
    sniffing, parsing and hashing. fs_path stays for readers that resolve siblings (ONNX
    external data) or need a real file (HDF5)."""
    with open(target.path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > SMALL_FILE:
            return Source(target.display, size, fs_path=target.path)
        # Ask for the size just learned (+1 to see growth): a read sized SMALL_FILE would
        # allocate a megabyte per file. Still read to EOF, at most SMALL_FILE + 1 bytes.
        data = fh.read(size + 1) or b""
        while len(data) <= SMALL_FILE:
            more = fh.read(SMALL_FILE + 1 - len(data))
            if not more:
                break
            data += more
    return Source(target.display, len(data), fs_path=target.path, data=data)


def _with_hash(results: list[FileResult], path: Path, options: ScanOptions) -> list[FileResult]:
    own = results[0]
    if options.hash == "never" or own.size is None or own.sha256 is not None:
        return results
    if options.hash == "auto" and own.size > AUTO_HASH_MAX:
        return results
    try:
        digest = sha256_file(path)
    except OSError:
        return results
    return [replace(own, sha256=digest), *results[1:]]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def scan_paths(
    paths: Sequence[str],
    options: ScanOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Scan files, directories and remote URLs (hf://, s3://, gs://); each regular file
    gets a verdict."""
    options = options or ScanOptions()
    started = time.perf_counter()
    from mlwarden.scan.knowledge import policy

    policy.use(options.allow_classes, options.source_paths)
    if any(p.startswith(REMOTE_SCHEMES) for p in paths):
        # Imported only for remote arguments: local scans never load the remote stack.
        from mlwarden.scan.sources.scanning import scan_mixed

        return scan_mixed(paths, options, progress, started)
    results = scan_local(paths, options, progress)
    return Report("scan", tuple(results), time.perf_counter() - started)


REMOTE_SCHEMES = ("hf://", "s3://", "gs://")


def scan_local(paths: Sequence[str], options: ScanOptions,
               progress: Callable[[int, int], None] | None = None) -> list[FileResult]:
    """Local files and directories, with their repository checks."""
    targets, roots = collect(paths)
    results: list[FileResult] = []
    total = len(targets)
    workers = min(options.workers or _auto_workers(total), total)
    if workers > 1 and hasattr(os, "fork"):
        for res in _scan_forked(targets, options, workers, progress):
            results.extend(res)
    elif workers > 1:
        # Imported here: process pools cost start-up time that small scans never need.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            chunk = max(1, min(64, total // (workers * 8) or 1))
            for i, res in enumerate(pool.map(_scan_target_job, ((t, options) for t in targets),
                                             chunksize=chunk)):
                results.extend(res)
                if progress:
                    progress(i + 1, total)
    else:
        for i, t in enumerate(targets):
            results.extend(scan_target(t, options))
            if progress:
                progress(i + 1, total)
    return repository_checks(roots, results)


def _scan_forked(targets: list[Target], options: ScanOptions, workers: int,
                 progress: Callable[[int, int], None] | None) -> list[list[FileResult]]:
    """Scan with ``workers`` processes: this one and ``workers - 1`` forked children.

    Each process takes every ``workers``-th target (big and small files interleave) and a
    child sends its results back pickled through a pipe (they are our own plain result
    objects, never scanned content). Plain fork + pipe instead of a process pool: importing
    multiprocessing and concurrent.futures alone costs more than scanning a few hundred
    small files. A child that fails to deliver has its share scanned here instead.
    Progress counts this process's share, so it runs ahead of the children's by at most
    one item each.
    """
    import pickle
    import signal

    total = len(targets)
    out: list[list[FileResult] | None] = [None] * total
    children: list[tuple[int, int, int]] = []  # (share, pid, read end)
    # Import the readers that model directories mostly need once, before forking, rather
    # than once in every process.
    for fmt_name in (fmt.PICKLE, fmt.ZIP):
        get_reader(fmt_name)
    try:
        for share in range(1, workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: scan its share, send it, never return into the caller
                status = 1
                try:
                    os.close(r)
                    mine = [scan_target(targets[i], options)
                            for i in range(share, total, workers)]
                    with os.fdopen(w, "wb") as fh:
                        fh.write(pickle.dumps(mine, pickle.HIGHEST_PROTOCOL))
                    status = 0
                finally:
                    os._exit(status)
            os.close(w)
            children.append((share, pid, r))
        done = 0
        for i in range(0, total, workers):
            out[i] = scan_target(targets[i], options)
            done = min(total, done + workers)
            if progress:
                progress(done, total)
        for share, pid, r in children:
            with os.fdopen(r, "rb") as fh:
                blob = fh.read()
            _, status = os.waitpid(pid, 0)
            theirs: object = None
            if blob and status == 0:
                with contextlib.suppress(Exception):  # a child that died mid-write
                    theirs = pickle.loads(blob)  # our own results, from our own child
            idx = range(share, total, workers)
            if not isinstance(theirs, list) or len(theirs) != len(idx):
                theirs = [scan_target(targets[i], options) for i in idx]
            for i, res in zip(idx, theirs, strict=True):
                out[i] = res
        children.clear()
    finally:
        for _share, pid, r in children:  # interrupted: stop and reap what is left
            with contextlib.suppress(OSError):
                os.close(r)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    if progress:
        progress(total, total)
    return [res for res in out if res is not None]


def _auto_workers(total: int) -> int:
    # Forking costs more than scanning a few hundred small files in-process.
    if total < 256:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _scan_target_job(args: tuple[Target, ScanOptions]) -> list[FileResult]:
    return scan_target(*args)


def repository_checks(roots: list[RepositoryRoot], results: list[FileResult]) -> list[FileResult]:
    """Repository-level checks run after every file in a directory has a verdict."""
    if not roots:
        return results
    try:
        from mlwarden.scan import repository
    except ModuleNotFoundError:
        return results
    for root in roots:
        extra = repository.check_repository(
            root.tree if root.tree is not None else root.path,  # type: ignore[arg-type]
            root.display, results)
        if not extra:
            continue
        merged: list[FileResult] = []
        for r in results:
            add = extra.pop(r.path, None)
            if add:
                fs = r.findings + tuple(add)
                r = replace(r, findings=fs, verdict=Verdict.worst(
                    [r.verdict, *(f.verdict for f in add)]))
            merged.append(r)
        for path, add in extra.items():
            merged.append(FileResult(path, "repository", Verdict.worst(f.verdict for f in add),
                                     None, None, tuple(add)))
        results = merged
    return results

