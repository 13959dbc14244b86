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
from collections.abc import Callable
from typing import Any

ENV_LOG_DIR = "MLWARDEN_ATTEST_LOG"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FLUSH_EVERY = 256


class Probe:
    """Collects (op, path, via) once per path; ``sink`` receives batches of records."""

    def __init__(self, sink: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.reads: dict[str, str] = {}
        self.writes: dict[str, str] = {}
        self.active = True
        self._sink = sink
        self._pending: list[dict[str, Any]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- recording ------------------------------------------------------------------------

    def note(self, op: str, path: Any, via: str) -> None:
        if not self.active:
            return
        try:
            p = os.fsdecode(path) if not isinstance(path, str) else path
        except TypeError:
            return
        if not p or "\x00" in p:
            return
        seen = self.reads if op == "r" else self.writes
        if p in seen:
            return
        p = os.path.abspath(p)
        if p in seen:
            return
        seen[p] = via
        if self._sink is not None:
            with self._lock:
                self._pending.append({"op": op, "path": p, "via": via})
                if len(self._pending) >= _FLUSH_EVERY:
                    self.flush_locked()

    def flush(self) -> None:
        with self._lock:
            self.flush_locked()

    def flush_locked(self) -> None:
        if self._pending and self._sink is not None:
            batch, self._pending = self._pending, []
            self._local.busy = True
            try:
                self._sink(batch)
            finally:
                self._local.busy = False

    # -- the audit hook ---------------------------------------------------------------------

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            if not self.active or getattr(self._local, "busy", False):
                return
            path = args[0]
            if isinstance(path, int) or path is None:
                return
            mode = args[1] if len(args) > 1 else None
            flags = args[2] if len(args) > 2 else 0
            if isinstance(mode, str):
                write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
            else:
                write = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
            self.note("w" if write else "r", path, "open")
        elif event in ("os.rename", "os.replace", "shutil.copyfile") and self.active and \
                len(args) >= 2 and not getattr(self._local, "busy", False):
            if event == "shutil.copyfile":
                self.note("r", args[0], event)
            self.note("w", args[1], event)

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
        _rebind_later[id(orig)] = wrapper

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


_rebind_later: dict[int, Any] = {}


def _rebind(module: Any) -> None:
    """``from transformers.utils.hub import cached_files`` bound the original: rebind."""
    if not _rebind_later:
        return
    for k, v in list(vars(module).items()):
        repl = _rebind_later.get(id(v))
        if repl is not None and repl is not v:
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

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        if self.fd < 0:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in batch).encode(
            "utf-8", "surrogateescape")
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
        sink.reopen_in_child()
        probe._pending = []
        sink([{"op": "start", "t": time.time(), "pid": os.getpid(), "ppid": os.getppid(),
               "forked": True}])

    os.register_at_fork(after_in_child=after_fork)
    sys.addaudithook(probe.audit)
    probe.install_native_hooks()

    def at_exit() -> None:
        probe._local.busy = True
        probe.scan_maps()
        probe._local.busy = False
        probe.flush()

    atexit.register(at_exit)
    return probe
