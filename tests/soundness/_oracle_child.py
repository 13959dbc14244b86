"""The sandboxed side of the differential oracle: a fork server that loads one file per
forked child with a real loader and records what the load resolved and invoked.

Run only by ``oracle.py`` (``python _oracle_child.py CONFIG_JSON``), inside the sandbox it
builds (no network, read-only file system except a scratch directory, own PID namespace,
when the machine allows it). This module imports the loaders but never mlwarden: the
ground truth must not depend on the scanner's code.

Protocol: one JSON request per stdin line ``{"path", "loader", "timeout"}``; one JSON reply
per stdout line with the recorded events. Each request runs in a fresh fork of the server
(preloaded libraries, copy-on-write), with resource limits, a temporary cwd and HOME, and
these recorders:

- a ``find_class`` override on every unpickler the loaders use (C ``pickle.Unpickler``,
  the pure-Python ``pickle._Unpickler`` joblib subclasses, torch's weights-only allowlist):
  each resolved name is recorded, and a callable outside the call allowlist (by identity)
  is replaced by a wrapper that records every call of it, whoever makes it (REDUCE, a
  rebuild helper, a defaultdict factory, a partial, a finaliser);
- ``sys.setprofile``: the ``__init__`` of a resolved class outside the call allowlist
  running means the class was called; module imports are tracked so that their own
  file and code events are not taken for payloads;
- an audit hook: processes, network, code built from strings, native libraries, writes
  outside the case directory, reads of planted canary secrets, environment changes.
  Process and network events are blocked after they are recorded;
- marker files: any file the load leaves in the case directory (cwd and HOME).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import shutil
import signal
import sys
import time
import traceback
import types
from typing import Any

MARKER = "mlw-oracle-marker"  # payloads may touch this name in their cwd
CANARIES = (".ssh/id_rsa", ".aws/credentials", ".netrc")
LOADERS = ("pickle", "pickle-loads", "torch", "torch-weights-only", "joblib", "numpy",
           "transformers")

_PROCESS = frozenset({
    "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "os.startfile", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
    "os.setuid", "os.setgid", "os.setreuid", "os.setregid", "os.setresuid", "os.setresgid",
    "os.setgroups", "os.chroot", "_posixsubprocess.fork_exec", "os.popen",
})
_NETWORK = frozenset({
    "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyaddr", "socket.gethostbyname_ex", "socket.sendto", "socket.sendmsg",
    "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
    "imaplib.open", "poplib.connect", "nntplib.connect", "telnetlib.Telnet.open",
    "webbrowser.open",
})
# Code built or run from data; ignored while a module is being imported.
_CODE = frozenset({
    "exec", "compile", "code.__new__", "function.__new__", "marshal.loads", "marshal.load",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.addressof",
    "ctypes.string_at", "ctypes.wstring_at", "ctypes.cdata", "ctypes.PyObj_FromPtr",
    "builtins.input", "sys.settrace", "sys.setprofile", "sys.addaudithook",
    "cpython.run_command", "cpython.run_file", "cpython.run_module",
    "cpython.run_interactivehook", "cpython.run_startup", "sys._current_frames",
    "object.__setattr__", "object.__delattr__",
})
# Path-changing file events: (event, index of the path argument(s)).
_FILE_PATHS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
    "os.chmod": (0,), "os.chown": (0,), "os.link": (1,), "os.symlink": (1,),
    "os.truncate": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
    "os.mkfifo": (0,), "os.mknod": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
    "shutil.copytree": (1,), "shutil.rmtree": (0,), "shutil.move": (0, 1),
    "shutil.chown": (0,), "shutil.make_archive": (0,), "shutil.unpack_archive": (1,),
    "tempfile.mkstemp": (0,), "tempfile.mkdtemp": (0,),
}
_ENV = frozenset({"os.putenv", "os.unsetenv"})
# Stdlib modules that build code from their own templates (namedtuple, dataclasses).
# ast.parse compiles to a tree only (numpy reads npy headers with ast.literal_eval).
_CODEGEN_MODULES = frozenset({"collections", "dataclasses", "typing", "enum", "string",
                              "functools", "abc", "warnings", "ast"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_RESOLVERS = frozenset({"builtins.getattr", "dill._dill._get_attr", "dill._dill._load_type",
                        "cloudpickle.cloudpickle._builtin_type"})


class Blocked(PermissionError):
    """Raised by the audit hook for process and network events after recording them."""


class Recorder:
    """Collects the events of one load; writes every event to ``fd`` as it happens so that
    a child killed by its timeout still leaves what it saw."""

    def __init__(self, fd: int, case: str, allow_call: frozenset[str], loader: str,
                 writable: tuple[str, ...] = ()) -> None:
        self.fd = fd
        self.case = os.path.realpath(case)
        self.writable = (self.case, *(os.path.realpath(w) for w in writable))
        self.allow_call = allow_call
        self.loader = loader
        self.armed = False
        self.busy = False  # re-entrancy guard for the audit hook
        self.import_depth = 0
        self.watched_inits: dict[types.CodeType, str] = {}
        self.resolved: set[str] = set()
        self.canaries = {os.path.join(self.case, c) for c in CANARIES}
        self.original_names: dict[int, str] = {}
        import importlib._bootstrap as bootstrap
        import importlib._bootstrap_external as external

        self.import_codes = {bootstrap._find_and_load.__code__,
                             external._LoaderBasics.exec_module.__code__}
        self.wrappers: dict[int, Any] = {}

    # ------------------------------------------------------------------ events
    def emit(self, kind: str, detail: str, violation: bool, limit: int = 400) -> None:
        line = json.dumps({"kind": kind, "detail": detail[:limit], "violation": violation})
        with contextlib.suppress(OSError):
            os.write(self.fd, line.encode() + b"\n")

    # ------------------------------------------------------------------ names
    def canonical(self, obj: Any) -> str | None:
        known = self.original_names.get(id(obj))
        if known is not None:
            return known
        if isinstance(obj, types.ModuleType):
            return obj.__name__
        if isinstance(obj, types.MethodType):
            owner = obj.__self__
            name = getattr(obj.__func__, "__qualname__", None)
            if isinstance(owner, type) and name:
                return f"{owner.__module__}.{name}"
            return None
        mod = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
        if isinstance(mod, str) and isinstance(qual, str):
            return f"{mod}.{qual}"
        return None

    def allowed(self, obj: Any, requested: str) -> bool:
        canon = self.canonical(obj)
        names = {requested, canon} if canon else {requested}
        return any(_norm(n) in self.allow_call for n in names)

    # ------------------------------------------------------------------ resolution
    def resolve(self, module: str, name: str, obj: Any, how: str) -> Any:
        """What a find_class (or a resolver call) hands the unpickler."""
        requested = _compat(module, name)
        canon = self.canonical(obj) or f"<{type(obj).__name__}>"
        key = f"{requested} -> {canon}" if canon != requested else requested
        if key not in self.resolved:
            self.resolved.add(key)
            self.emit("resolve", f"{how}: {key}", False)
        return self.policy(obj, requested)

    def policy(self, obj: Any, requested: str) -> Any:
        if isinstance(obj, type):
            if not self.allowed(obj, requested):
                self._watch_class(obj, requested)
            return obj
        if not callable(obj) or self.allowed(obj, requested):
            return obj
        canon = self.canonical(obj) or requested
        if _norm(canon) in _RESOLVERS or _norm(requested) in _RESOLVERS:
            return self._resolver(obj, canon)
        return self._wrap(obj, canon if canon == requested else f"{requested} ({canon})")

    def _wrap(self, obj: Any, label: str) -> Any:
        cached = self.wrappers.get(id(obj))
        if cached is not None:
            return cached
        rec = self

        def oracle_call(*args: Any, **kwargs: Any) -> Any:
            if rec.armed:
                rec.emit("call", f"{label} called with {_short(args, kwargs)}", True)
            return obj(*args, **kwargs)

        self.wrappers[id(obj)] = oracle_call
        self.original_names[id(oracle_call)] = self.canonical(obj) or label
        return oracle_call

    def _resolver(self, obj: Any, canon: str) -> Any:
        """getattr and friends resolve a name: the result is judged, not the lookup."""
        rec = self

        def oracle_resolver(*args: Any, **kwargs: Any) -> Any:
            result = obj(*args, **kwargs)
            if not rec.armed:
                return result
            base = args[0] if args else None
            attr = args[1] if len(args) > 1 else (args[0] if args else "?")
            owner = rec.canonical(base) if base is not None else None
            name = f"{owner}.{attr}" if owner and len(args) > 1 else str(attr)
            mod, _, qual = name.rpartition(".")
            return rec.resolve(mod or "?", qual, result, canon)

        self.original_names[id(oracle_resolver)] = canon
        return oracle_resolver

    def _watch_class(self, cls: type, label: str) -> None:
        for klass in cls.__mro__:
            if klass is object:
                return
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            code = getattr(init, "__code__", None)
            if isinstance(code, types.CodeType):
                self.watched_inits.setdefault(code, label)
            return

    # ------------------------------------------------------------------ hooks
    def profile(self, frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if code in self.import_codes:
                self.import_depth += 1
            elif self.armed and code in self.watched_inits:
                self.emit("class-call", f"{self.watched_inits[code]} instantiated "
                          f"(its __init__ {getattr(code, 'co_qualname', code.co_name)} ran)", True)
        elif event == "return" and frame.f_code in self.import_codes:
            self.import_depth -= 1

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed or self.busy:
            return
        self.busy = True
        try:
            self._audit(event, args)
        finally:
            self.busy = False

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "pickle.find_class":
            key = _compat(str(args[0]), str(args[1]))
            if key not in self.resolved:
                self.resolved.add(key)
                self.emit("resolve", f"find_class: {key}", False)
            return
        if event in _PROCESS:
            self.emit("process", f"{event}{_short(args, {})}", True)
            raise Blocked(f"oracle sandbox: {event} blocked")
        if event in _NETWORK:
            self.emit("network", f"{event}{_short(args, {})}", True)
            raise Blocked(f"oracle sandbox: {event} blocked")
        if event == "open":
            self._open(args)
            return
        if event in _FILE_PATHS:
            for i in _FILE_PATHS[event]:
                if i < len(args) and not self._inside(args[i], write=True):
                    self.emit("file", f"{event}{_short(args, {})}", True)
                    raise Blocked(f"oracle sandbox: {event} outside the case directory")
            return
        if event in _ENV:
            raiser = self._raiser(3)
            if not (self.import_depth > 0 and raiser is not None
                    and _trusted(raiser.f_code.co_filename)):
                self.emit("environment", f"{event}{_short(args, {})}", True)
            return
        if event == "import":
            if self.import_depth <= 1:
                self.emit("import", f"import {args[0]}", False)
            return
        if event in _CODE and not self._benign_code(event, args):
            self.emit("code", f"{event}{_short(args, {})}", True)

    def _benign_code(self, event: str, args: tuple[Any, ...]) -> bool:
        """Code events are judged by who raises them. A module's own source being compiled
        and run is an import. Inside an import, installed libraries may generate code
        (mpmath, namedtuple); code that is not installed (remote code in the modules cache)
        may not, at import time either (``exec(base64...)``). Outside imports, only the
        stdlib's template code generators (namedtuple, dataclasses) may."""
        if event == "exec":
            filename = getattr(args[0], "co_filename", "") if args else ""
            if _is_source_file(filename):
                return True
        elif event == "compile":
            source, filename = ((*tuple(args), None, None))[:2]
            if isinstance(filename, (str, bytes)) and _is_source_file(os.fsdecode(filename)) \
                    and _same_source(os.fsdecode(filename), source):
                return True
        elif event.startswith("object.") and not isinstance(args[0], type):
            return True
        frame = self._raiser()
        if frame is None:
            return False
        if self.import_depth > 0:
            return _trusted(frame.f_code.co_filename)
        if event in ("marshal.loads", "marshal.load"):
            return False
        return _codegen_frame(frame)

    def _raiser(self, depth: int = 4) -> types.FrameType | None:
        """The innermost frame outside importlib that raised the event (``depth``: frames
        between here and the hook's caller: _raiser, [_benign_code,] _audit, audit)."""
        f: types.FrameType | None = sys._getframe(depth)
        while f is not None and f.f_code.co_filename.startswith("<frozen importlib"):
            f = f.f_back
        return f

    def _open(self, args: tuple[Any, ...]) -> None:
        path, mode, flags = ((*tuple(args), None, None, None))[:3]
        if isinstance(path, int):
            return
        write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        real = _real(path)
        if real in self.canaries:
            self.emit("canary", f"reads planted secret {real}", True)
            return
        if write and not self._inside(path, write=True):
            self.emit("file", f"opens {real} for writing (mode {mode!r})", True)
            raise Blocked("oracle sandbox: write outside the case directory")

    def _inside(self, path: Any, write: bool) -> bool:
        if isinstance(path, int) or path is None:
            return True
        real = _real(path)
        return any(real == w or real.startswith(w + os.sep) for w in self.writable)


_TRUSTED_ROOTS: tuple[str, ...] = ()


def _trusted(filename: str) -> bool:
    """Code of the interpreter and of installed distributions (not remote code)."""
    if filename.startswith("<frozen "):
        return True
    real = _real(filename)
    return any(real.startswith(root) for root in _TRUSTED_ROOTS)


def _codegen_frame(frame: types.FrameType) -> bool:
    """namedtuple/dataclass/enum build code from their own templates."""
    f: types.FrameType | None = frame
    for _ in range(4):
        if f is None:
            return False
        mod = str(f.f_globals.get("__name__", ""))
        if mod.split(".")[0] in _CODEGEN_MODULES:
            return True
        f = f.f_back
    return False


def _is_source_file(filename: str) -> bool:
    return filename.endswith(".py") and os.path.isfile(filename)


def _same_source(filename: str, source: Any) -> bool:
    """The compiled text is the file's own (a fake filename does not make it an import)."""
    if isinstance(source, str):
        source = source.encode("utf-8", "surrogateescape")
    if not isinstance(source, (bytes, bytearray, memoryview)):
        return False
    try:
        fd = os.open(filename, os.O_RDONLY)
        try:
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
        finally:
            os.close(fd)
    except OSError:
        return False
    return bytes(source) == data or bytes(source) == data.replace(b"\r\n", b"\n")


def _real(path: Any) -> str:
    try:
        return os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return str(path)


def _norm(name: str) -> str:
    for old, new in (("numpy._core.", "numpy.core."), ("__builtin__.", "builtins."),
                     ("copy_reg.", "copyreg.")):
        if name.startswith(old):
            return new + name[len(old):]
    return name


def _compat(module: str, name: str) -> str:
    """The name find_class really imports (protocol < 3 mapping of Python 2 names)."""
    import _compat_pickle

    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped:
        module, name = mapped
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _short(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        text = ", ".join(_brief(a) for a in args[:4])
        if kwargs:
            text += ", " + ", ".join(f"{k}={_brief(v)}" for k, v in list(kwargs.items())[:4])
    except Exception:  # a hostile __repr__; the event is what matters
        text = "..."
    return f"({text})"


def _brief(value: Any) -> str:
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return repr(value)[:80]
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "[" + ", ".join(_brief(v) for v in value[:4]) + "]"
    return f"<{type(value).__name__}>"


# ---------------------------------------------------------------------- instrumentation


def _instrument(rec: Recorder) -> None:
    """Route every unpickler the loaders use through the recorder."""
    import pickle

    c_unpickler = pickle.Unpickler

    class RecordingUnpickler(c_unpickler):  # type: ignore[misc, valid-type]
        def find_class(self, module: str, name: str) -> Any:
            obj = super().find_class(module, name)
            return rec.resolve(module, name, obj, "find_class")

    def recording_load(file: Any, **kwargs: Any) -> Any:
        return RecordingUnpickler(file, **kwargs).load()

    def recording_loads(data: Any, /, **kwargs: Any) -> Any:
        # loads reads its buffer linearly. A file whose peek() returns all of the data
        # gives the C unpickler the same view (frames are prefetched with peek, never
        # buffered with read(), which is where file loads diverge: gh-154848).
        import io

        raw = bytes(data)
        buffered = io.BufferedReader(io.BytesIO(raw), buffer_size=max(len(raw), 1) + 16)
        return RecordingUnpickler(buffered, **kwargs).load()

    rec.original_names[id(RecordingUnpickler)] = "pickle.Unpickler"
    rec.original_names[id(recording_load)] = "pickle.load"
    rec.original_names[id(recording_loads)] = "pickle.loads"
    pickle.Unpickler = RecordingUnpickler  # type: ignore[misc]
    pickle.load = recording_load
    pickle.loads = recording_loads

    py_find = pickle._Unpickler.find_class  # type: ignore[attr-defined]

    def py_find_class(self: Any, module: str, name: str) -> Any:
        return rec.resolve(module, name, py_find(self, module, name), "find_class")

    pickle._Unpickler.find_class = py_find_class  # type: ignore[attr-defined]
    torch = sys.modules.get("torch")
    if torch is not None:
        wo = sys.modules["torch._weights_only_unpickler"]
        original = wo._get_allowed_globals
        cache: dict[str, Any] = {}

        def allowed_globals() -> dict[str, Any]:
            if not cache:
                for k, v in original().items():
                    mod, _, qual = k.rpartition(".")
                    cache[k] = rec.resolve(mod, qual, v, "weights-only allowlist")
            return cache

        wo._get_allowed_globals = allowed_globals


# ---------------------------------------------------------------------- loaders


def _load(loader: str, path: str) -> Any:
    if loader == "pickle":
        import pickle

        with open(path, "rb") as fh:
            return pickle.load(fh)
    if loader == "pickle-loads":
        import pickle

        with open(path, "rb") as fh:
            data = fh.read()
        return pickle.loads(data)
    if loader in ("torch", "torch-weights-only"):
        import torch

        return torch.load(path, map_location="cpu", weights_only=loader != "torch")
    if loader == "joblib":
        import joblib

        return joblib.load(path)
    if loader == "numpy":
        import numpy

        out = numpy.load(path, allow_pickle=True)
        if hasattr(out, "files"):  # NpzFile: members load lazily, as a user reads them
            with out:
                return {k: out[k] for k in out.files}
        return out
    if loader == "transformers":
        return _transformers(path)
    raise ValueError(f"unknown loader {loader!r}")


def _transformers(path: str) -> Any:
    """Every entry point that runs the repository's code: AutoConfig and the Auto classes
    named in ``auto_map`` (config and tokenizer config); remote code is reached only
    through those. AutoModel is tried when no model class is mapped."""
    import transformers

    names = ["AutoConfig"]
    for doc in ("config.json", "tokenizer_config.json"):
        try:
            with open(os.path.join(path, doc)) as fh:
                auto_map = json.load(fh).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(auto_map, dict):
            names += [k for k in auto_map if isinstance(k, str) and k.startswith("Auto")]
    if not any(n.startswith("AutoModel") for n in names):
        names.append("AutoModel")
    if os.path.exists(os.path.join(path, "tokenizer_config.json")):
        names.append("AutoTokenizer")
    errors = []
    out = []
    for auto in dict.fromkeys(names):
        cls = getattr(transformers, auto, None)
        if cls is None:
            continue
        try:
            out.append(cls.from_pretrained(path, trust_remote_code=True,
                                           local_files_only=True))
        except Blocked:
            raise
        except Exception as exc:  # each entry point is tried; what ran is recorded
            errors.append(f"{auto}: {type(exc).__name__}: {exc}"[:300])
    if not out:
        raise RuntimeError("; ".join(errors))
    return out


# ---------------------------------------------------------------------- one case


def _child(req: dict[str, Any], case: str, events_fd: int, cfg: dict[str, Any]) -> None:
    """Runs in the forked child: limits, sandbox directories, hooks, the load."""
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # stdout is the server's protocol channel
        os.dup2(devnull, fd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a large write fails instead of killing
    _limits(cfg, req)
    os.chdir(case)
    for c in CANARIES:
        p = os.path.join(case, c)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as fh:
            fh.write("canary secret planted by the mlwarden oracle\n")
    os.environ.update({"HOME": case, "TMPDIR": case})
    import tempfile

    tempfile.tempdir = case
    rec = Recorder(events_fd, case, frozenset(cfg["allow_call"]), req["loader"],
                   (os.environ["HF_HOME"],))
    _instrument(rec)
    sys.addaudithook(rec.audit)
    sys.setprofile(rec.profile)
    status, error = "ok", ""
    rec.armed = True
    try:
        obj = _load(req["loader"], req["path"])
        del obj
        gc.collect()  # finalisers of loaded objects run in the real program too
    except Blocked as exc:
        status, error = "blocked", str(exc)
    except BaseException as exc:  # what the loader raised is the outcome
        status, error = "error", f"{type(exc).__name__}: {exc}"[:500]
        if cfg.get("debug"):
            error += "\n" + traceback.format_exc()
    finally:
        rec.armed = False
        sys.setprofile(None)
    rec.emit("status", json.dumps({"status": status, "error": error}), False, 1 << 16)
    os._exit(0)


def _limits(cfg: dict[str, Any], req: dict[str, Any]) -> None:
    with open("/proc/self/statm") as fh:
        vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    mem = vsz + int(cfg.get("memory_mib", 2048)) * (1 << 20)
    for lim, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CORE, 0),
                       (resource.RLIMIT_FSIZE, 64 << 20),
                       (resource.RLIMIT_CPU, int(req.get("timeout", 20)) + 2)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(lim, (value, value))


def _run_case(req: dict[str, Any], cfg: dict[str, Any], n: int) -> dict[str, Any]:
    scratch = cfg["scratch"]
    case = os.path.join(scratch, f"case-{n}")
    events = os.path.join(scratch, f"events-{n}.jsonl")
    shutil.rmtree(case, ignore_errors=True)
    os.makedirs(case)
    fd = os.open(events, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    timeout = float(req.get("timeout", 20))
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(req, case, fd, cfg)
        finally:
            os._exit(0)
    os.close(fd)
    status = _wait(pid, timeout)
    _reap(pid)
    took = time.monotonic() - started
    reply = _collect(events, case, status, took)
    shutil.rmtree(case, ignore_errors=True)
    shutil.rmtree(os.environ["HF_HOME"], ignore_errors=True)  # no module cache across cases
    with contextlib.suppress(OSError):
        os.remove(events)
    return reply


def _wait(pid: int, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                return "timeout" if sig == signal.SIGXCPU else f"crash (signal {sig})"
            return None
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.002)


def _reap(pgid: int) -> None:
    """Kill whatever the case left running and collect orphans (the server may be PID 1
    of its namespace)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return


def _collect(events: str, case: str, died: str | None, took: float) -> dict[str, Any]:
    out: dict[str, Any] = {"events": [], "status": died or "crash (no status)", "error": "",
                           "markers": [], "seconds": round(took, 3)}
    try:
        with open(events) as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
    for line in lines[:5000]:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("kind") == "status":
            st = json.loads(ev["detail"])
            out["status"], out["error"] = (died or st["status"]), st["error"]
        else:
            out["events"].append(ev)
    skip = {os.path.join(case, c) for c in CANARIES}
    for root, _dirs, files in os.walk(case):
        for f in files:
            p = os.path.join(root, f)
            if p not in skip:
                out["markers"].append(os.path.relpath(p, case))
    return out


# ---------------------------------------------------------------------- server


def _preload(cfg: dict[str, Any]) -> dict[str, str]:
    """Import the loaders' libraries once; forked children share them."""
    import pickle  # noqa: F401

    versions = {}
    import importlib

    for spec in cfg.get("preload", ()):
        mod, _, attrs = spec.partition(":")
        try:
            m = importlib.import_module(mod)
            for a in filter(None, attrs.split(",")):
                getattr(m, a)  # lazy modules (transformers) import on attribute access
            versions[mod] = str(getattr(m, "__version__", "?"))
        except Exception as exc:  # a missing library makes its loader unavailable
            versions[mod] = f"unavailable: {type(exc).__name__}: {exc}"[:200]
    with contextlib.suppress(Exception):
        import torch

        torch.set_num_threads(1)
    return versions


def main() -> int:
    global _TRUSTED_ROOTS
    cfg = json.loads(sys.argv[1])
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(),
             *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib",
                                                   "platlib")), os.path.dirname(__file__)}
    _TRUSTED_ROOTS = tuple(sorted({_real(r) + os.sep for r in roots if r}))
    sys.dont_write_bytecode = True
    os.makedirs(cfg["scratch"], exist_ok=True)
    # transformers reads these at import: one cache per server, emptied after each case.
    hf = os.path.join(cfg["scratch"], "hf")
    os.environ.update({"HF_HOME": hf, "HF_MODULES_CACHE": os.path.join(hf, "modules"),
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    versions = _preload(cfg)
    gc.freeze()  # preloaded objects stay out of each child's collection (fast finalisers)
    out = sys.stdout
    out.write(json.dumps({"ready": True, "versions": versions,
                          "sandbox": os.environ.get("MLW_ORACLE_SANDBOX", "none")}) + "\n")
    out.flush()
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        n += 1
        try:
            reply = _run_case(req, cfg, n)
        except Exception as exc:  # the server keeps serving
            reply = {"events": [], "status": "oracle-error", "markers": [], "seconds": 0,
                     "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
