"""What a training process reads and writes, seen from inside it.

Installed by the ``mlwarden attest`` bootstrap (sitecustomize) in every Python process of the
run, or by ``Recorder`` in the current process. Sources, cheapest first:

* the ``open`` audit event (every Python ``open``/``os.open``/``io.open_code``, including the
  main script), plus ``os.rename``/``os.replace``/``shutil.copyfile``;
* wrappers on readers that open files in native code: ``safetensors.safe_open`` /
  ``serialize_file``, ``pyarrow.memory_map`` / ``pyarrow.parquet``, and every path
  transformers resolves (``cached_files``: tokenizers read those in Rust);
* at exit, the file-backed mappings in ``/proc/self/maps`` (memory-mapped weights and Arrow
  tables opened in C).

Each path is recorded once per operation. The hook does no I/O for a path it has seen; new
paths are buffered and appended to a per-process log (``<pid>-<n>.jsonl``) in batches and at
exit, so a process killed with ``os._exit`` loses at most the last batch. Nothing here may
import mlwarden's heavier modules: this runs before the user's code in every process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

ENV_LOG_DIR = "MLWARDEN_ATTEST_LOG"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FLUSH_EVERY = 1024
_encode: Callable[[str], str] = json.encoder.encode_basestring_ascii


def resolve(records: Iterable[tuple[str, Any, str]], cwd: str = "") -> \
        tuple[dict[str, str], dict[str, str]]:
    """(reads, writes) of raw records: paths made absolute against the latest ``cwd``
    record, first sighting kept."""
    reads: dict[str, str] = {}
    writes: dict[str, str] = {}
    for op, p, via in records:
        if not isinstance(p, str):
            try:
                p = os.fsdecode(p)
            except TypeError:
                continue
        if op == "cwd":
            cwd = p
            continue
        if not p or "\x00" in p:
            continue
        if p[0] != "/" or "//" in p or "/./" in p or "/../" in p or \
                p.endswith(("/", "/.", "/..")):
            p = os.path.normpath(os.path.join(cwd or "/", p))
        (writes if op == "w" else reads).setdefault(p, via)
    return reads, writes


class Probe:
    """Collects (op, path, via) once per path; ``sink`` receives batches of records.

    The hook runs for every audit event of the process (tens of thousands in a training
    run), so it only dedupes the raw path and appends: making paths absolute and encoding
    them happen at flush time or in the reader. A ``("cwd", dir, "")`` record marks each
    working directory that relative paths after it are relative to."""

    def __init__(self, sink: Callable[[list[Any]], None] | None = None) -> None:
        self.active = True
        self.busy = False  # set while the probe itself opens files (maps at exit)
        self._sink = sink
        self._raw: list[tuple[str, Any, str]] = [("cwd", os.getcwd(), "")]
        self._seen: tuple[set[Any], set[Any]] = (set(), set())  # reads, writes (raw keys)
        self._cwd_stale = False
        self._lock = threading.Lock()
        self.audit = self._make_hook()

    # -- recording ------------------------------------------------------------------------

    def note(self, op: str, path: Any, via: str) -> None:
        if not self.active:
            return
        seen = self._seen[op == "w"]
        try:
            if path in seen:
                return
            seen.add(path)
        except TypeError:  # unhashable: not a path
            return
        if self._cwd_stale:
            self._cwd_stale = False
            self._raw.append(("cwd", os.getcwd(), ""))
        self._raw.append((op, path, via))
        if self._sink is not None and len(self._raw) >= _FLUSH_EVERY:
            self.flush()

    def _make_hook(self) -> Callable[[str, tuple[Any, ...]], None]:
        note = self.note
        probe = self
        wanted = frozenset({"open", "os.chdir", "os.rename", "os.replace", "shutil.copyfile"})

        def audit(event: str, args: tuple[Any, ...]) -> None:
            if event not in wanted:  # one hash probe for the ~90% of events we ignore
                return
            if event == "open":
                if probe.busy or not probe.active:
                    return
                path = args[0]
                if path is None or path.__class__ is int:
                    return
                mode = args[1] if len(args) > 1 else None
                if mode.__class__ is str:
                    write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
                else:
                    flags = args[2] if len(args) > 2 else 0
                    write = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
                note("w" if write else "r", path, "open")
            elif event == "os.chdir":
                # Relative paths seen from now on are relative to another directory.
                probe._cwd_stale = True
                probe._seen[0].clear()
                probe._seen[1].clear()
            elif len(args) >= 2 and not probe.busy:  # a rename, replace or copy
                if event == "shutil.copyfile":
                    note("r", args[0], event)
                note("w", args[1], event)

        return audit

    def flush(self) -> None:
        if self._sink is None:
            return
        with self._lock:
            n = len(self._raw)
            batch = self._raw[:n]
            del self._raw[:n]  # appends made meanwhile by other threads stay
            if batch:
                self._sink(batch)

    def records(self) -> list[tuple[str, Any, str]]:
        """Everything recorded and not yet flushed (all of it without a sink)."""
        return list(self._raw)

    def reset(self) -> None:
        with self._lock:
            self._raw[:] = [("cwd", os.getcwd(), "")]
            self._seen[0].clear()
            self._seen[1].clear()
            self._cwd_stale = False

    def paths(self) -> tuple[dict[str, str], dict[str, str]]:
        """(reads, writes): absolute path -> how it was seen."""
        return resolve(self.records())

    # -- native readers -------------------------------------------------------------------

    def wrap(self, module: Any, name: str, op: str, via: str, arg: int = 0,
             kw: str | None = None) -> None:
        """Record the path argument of ``module.name`` before calling it."""
        orig = getattr(module, name, None)
        if orig is None or getattr(orig, "__mlwarden_probe__", False):
            return
        probe = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            target = args[arg] if len(args) > arg else kwargs.get(kw) if kw else None
            if isinstance(target, (str, bytes, os.PathLike)):
                probe.note(op, target, via)
            return orig(*args, **kwargs)

        wrapper.__mlwarden_probe__ = True  # type: ignore[attr-defined]
        wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
        wrapper.__name__ = getattr(orig, "__name__", name)
        wrapper.__doc__ = getattr(orig, "__doc__", None)
        with contextlib.suppress(AttributeError, TypeError):
            setattr(module, name, wrapper)

    def wrap_result(self, module: Any, name: str, via: str) -> None:
        """Record every path ``module.name`` returns (transformers' resolved files)."""
        orig = getattr(module, name, None)
        if orig is None or getattr(orig, "__mlwarden_probe__", False):
            return
        probe = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = orig(*args, **kwargs)
            for p in (out if isinstance(out, (list, tuple)) else [out]):
                if isinstance(p, (str, os.PathLike)):
                    probe.note("r", p, via)
            return out

        wrapper.__mlwarden_probe__ = True  # type: ignore[attr-defined]
        wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
        wrapper.__name__ = getattr(orig, "__name__", name)
        setattr(module, name, wrapper)
        _rebind_later.append((orig, wrapper))

    def install_native_hooks(self) -> None:
        from mlwarden.util.importhooks import when_any_imported, when_imported

        def safetensors(m: Any) -> None:
            self.wrap(m, "safe_open", "r", "safetensors", 0, "filename")
            self.wrap(m, "serialize_file", "w", "safetensors", 1, "filename")

        def pyarrow(m: Any) -> None:
            self.wrap(m, "memory_map", "r", "pyarrow", 0, "path")
            self.wrap(m, "OSFile", "r", "pyarrow", 0, "path")

        def parquet(m: Any) -> None:
            self.wrap(m, "read_table", "r", "pyarrow", 0, "source")
            self.wrap(m, "ParquetFile", "r", "pyarrow", 0, "source")

        def hub(m: Any) -> None:
            self.wrap_result(m, "cached_files", "transformers")
            self.wrap_result(m, "cached_file", "transformers")

        when_imported("safetensors", safetensors)
        when_imported("pyarrow", pyarrow)
        when_imported("pyarrow.parquet", parquet)
        when_imported("transformers.utils.hub", hub)
        when_any_imported("transformers", _rebind)

    def scan_maps(self) -> None:
        """File-backed memory mappings that are open now (weights, Arrow tables)."""
        try:
            with open("/proc/self/maps", "rb") as fh:
                data = fh.read()
        except OSError:
            return
        for line in data.split(b"\n"):
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith(b"/") and not parts[5].endswith(
                    (b"(deleted)", b".so")) and b".so." not in parts[5]:
                self.note("r", parts[5].decode("utf-8", "surrogateescape"), "mmap")


# (original, wrapper); compared by identity (``id()`` would raise an audit event per name).
_rebind_later: list[tuple[Any, Any]] = []


def _rebind(module: Any) -> None:
    """``from transformers.utils.hub import cached_files`` bound the original: rebind."""
    if not _rebind_later:
        return
    for k, v in list(vars(module).items()):
        for orig, repl in _rebind_later:
            if v is orig:
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, k, repl)


# ----------------------------------------------------------------------------- child process


class _LogSink:
    """Appends JSON lines to this process's own file; a forked child opens its own."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.fd = -1
        self._open()

    def _open(self) -> None:
        for n in range(1000):
            path = os.path.join(self.directory, f"{os.getpid()}-{n}.jsonl")
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                                  0o600)
                return
            except FileExistsError:
                continue

    def reopen_in_child(self) -> None:
        self.fd = -1
        self._open()

    def __call__(self, batch: list[Any]) -> None:
        if self.fd < 0:
            return
        lines = []
        for r in batch:
            if isinstance(r, dict):
                lines.append(json.dumps(r, separators=(",", ":")))
                continue
            op, p, via = r
            if not isinstance(p, str):
                try:
                    p = os.fsdecode(p)
                except TypeError:
                    continue
            lines.append(f'{{"op":"{op}","path":{_encode(p)},"via":"{via}"}}')
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):
            os.write(self.fd, data)


_installed: Probe | None = None


def install_from_env() -> Probe | None:
    """What the attest bootstrap calls: record this process into $MLWARDEN_ATTEST_LOG."""
    global _installed
    directory = os.environ.get(ENV_LOG_DIR)
    if not directory or _installed is not None:
        return _installed
    sink = _LogSink(directory)
    probe = Probe(sink)
    _installed = probe
    sink([{"op": "start", "t": time.time(), "pid": os.getpid(), "ppid": os.getppid(),
           "cwd": os.getcwd(),
           "executable": sys.executable, "argv": list(sys.argv), "sys_path": list(sys.path),
           "prefix": sys.prefix, "base_prefix": sys.base_prefix,
           "python": sys.version.split()[0], "implementation": sys.implementation.name}])

    def after_fork() -> None:
        probe.busy = True
        sink.reopen_in_child()
        probe.busy = False
        probe.reset()  # the parent logs what it recorded before the fork
        sink([{"op": "start", "t": time.time(), "pid": os.getpid(), "ppid": os.getppid(),
               "cwd": os.getcwd(), "forked": True}])

    os.register_at_fork(after_in_child=after_fork)
    sys.addaudithook(probe.audit)
    probe.install_native_hooks()

    def at_exit() -> None:
        probe.busy = True
        probe.scan_maps()
        probe.busy = False
        probe.flush()
        # Registered first, so it runs last: the process has done its work (interpreter
        # teardown follows). attest may assemble the record from here on, and uses it only
        # if nothing changes before the process exits.
        with contextlib.suppress(OSError):
            os.close(os.open(os.path.join(directory, f"{os.getpid()}.exit"),
                             os.O_WRONLY | os.O_CREAT, 0o600))

    atexit.register(at_exit)
    return probe
