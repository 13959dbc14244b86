"""HDF5 files: legacy Keras ``.h5`` models (the ``model_config`` attribute is analysed like a
``.keras`` config, including Lambda bytecode that Keras runs even in safe mode,
CVE-2025-9905), Keras weight files, and plain HDF5 data.

h5py only parses the container; Keras is never imported. External links are listed without
being followed.

libhdf5 is C code that crashes (SIGSEGV) and loops forever on crafted files (found by
fuzzing, tests/fuzz). Where ``os.fork`` exists, h5py therefore parses in a forked child
with an address-space and CPU bound and a wall-clock timeout; only a small JSON summary
(findings and the model_config text) comes back, and the parent validates it. A fork costs
a few milliseconds, so the clean path stays cheap. Without fork (Windows) h5py runs
in-process.
"""

from __future__ import annotations

import base64
import faulthandler
import json
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import RULES, rule
from mlwarden.scan.context import MiB, ScanContext
from mlwarden.scan.formats.keras import analyze_keras_config_bytes
from mlwarden.scan.source import Source
from mlwarden.util.forkguard import GUARD

MAX_LINKS = 200_000
CHILD_TIMEOUT = 20.0  # seconds of wall-clock time for parsing one file
CHILD_MEMORY = 1024 * MiB  # address space the child may add to what it inherited
SANDBOX = hasattr(os, "fork")

HDF5_DATA = rule(
    "hdf5-data",
    Verdict.CLEAN,
    Severity.INFO,
    "HDF5 file without a model config",
    "Weights or data only (no model_config attribute): nothing in it is deserialised into "
    "code.",
)
HDF5_EXTERNAL = rule(
    "hdf5-external-link",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "HDF5 external link to another file",
    "An external link makes readers that follow it open another file (any path on the "
    "host). Model files do not need them.",
)
HDF5_INVALID = rule(
    "hdf5-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "HDF5 file that h5py cannot open",
    "The signature says HDF5 but the library cannot parse the file (truncated or crafted).",
)


HDF5_CRASH = rule(
    "hdf5-parser-crash",
    Verdict.UNSCANNABLE,
    Severity.HIGH,
    "The HDF5 library crashed or ran out of bounds on this file",
    "h5py/libhdf5 parse the file in a sandboxed child process, which died (a signal such "
    "as SIGSEGV) or exhausted its memory bound. Any loader that opens the file (h5py, "
    "Keras) runs the same C code: the file may be crafted to exploit it. Do not load it.",
)
HDF5_TIMEOUT = rule(
    "hdf5-parser-timeout",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "The HDF5 library did not finish parsing this file",
    "Parsing ran past its time bound in the sandboxed child and was stopped; crafted "
    "files make libhdf5 loop forever, which hangs any loader that opens them.",
)

# What h5py raises when the HDF5 library meets a malformed file: HDF5 errors surface as
# OSError/RuntimeError/KeyError/ValueError, and the Python file-object driver (archive
# members) raises OverflowError/SystemError on absurd addresses.
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, OverflowError,
              SystemError)
# Rules a child may report; anything else in its answer is rejected.
_CHILD_RULES = frozenset({HDF5_DATA.id, HDF5_EXTERNAL.id, HDF5_INVALID.id, "limit-exceeded",
                          "scan-error"})


@dataclass
class _Parsed:
    """What h5py found, in a form that crosses a pipe as JSON (never as a pickle)."""

    format: str = "hdf5"
    events: list[tuple[str, str, str | None]] = field(default_factory=list)
    config: bytes | str | None = None

    def report(self, rule_id: str, message: str, detail: str | None = None) -> None:
        self.events.append((rule_id, message, detail))

    def to_json(self) -> bytes:
        cfg: dict[str, str] | None = None
        if isinstance(self.config, bytes):
            cfg = {"b64": base64.b64encode(self.config).decode()}
        elif isinstance(self.config, str):
            cfg = {"text": self.config}
        return json.dumps({"format": self.format, "events": self.events,
                           "config": cfg}).encode()

    @staticmethod
    def from_json(raw: bytes) -> _Parsed:
        """Parse and validate a child's answer; ValueError when it is not well-formed."""
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("format") not in ("hdf5", "keras-h5"):
            raise ValueError("unexpected answer")
        out = _Parsed(doc["format"])
        for ev in doc.get("events") or []:
            if (not isinstance(ev, list) or len(ev) != 3 or ev[0] not in _CHILD_RULES
                    or not isinstance(ev[1], str)
                    or not (ev[2] is None or isinstance(ev[2], str))):
                raise ValueError("unexpected event")
            out.report(ev[0], ev[1][:2000], None if ev[2] is None else ev[2][:500])
        cfg = doc.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("b64"), str):
            out.config = base64.b64decode(cfg["b64"], validate=True)
        elif isinstance(cfg, dict) and isinstance(cfg.get("text"), str):
            out.config = cfg["text"]
        elif cfg is not None:
            raise ValueError("unexpected config")
        return out


def read_hdf5(source: Source, ctx: ScanContext) -> None:
    ctx.format = "hdf5"
    parsed = _parse_sandboxed(source, ctx) if SANDBOX else _parse(source, ctx.limits.max_text_bytes)
    if parsed is None:
        return
    ctx.format = parsed.format
    for rule_id, message, detail in parsed.events:
        ctx.report(RULES[rule_id], message, Location(detail=detail) if detail else None)
    if parsed.config is not None:
        analyze_keras_config_bytes(parsed.config, ctx, Location(detail="model_config attribute"))


def _parse(source: Source, max_config: int) -> _Parsed:
    """Everything that touches h5py. The model_config text is returned, not analysed, so
    that errors of our own analysis are never blamed on the file."""
    import h5py  # imported lazily: only HDF5 files pay for it

    out = _Parsed()
    fh = None if source.fs_path is not None else source.open()
    try:
        try:
            f = h5py.File(str(source.fs_path) if fh is None else fh, "r", locking=False)
        except _H5_ERRORS as exc:
            out.report(HDF5_INVALID.id, f"h5py cannot open the file: {str(exc)[:300]}")
            return out
        try:
            with f:
                _read(f, out, max_config)
        except _H5_ERRORS as exc:
            out.report(HDF5_INVALID.id, f"h5py failed while reading the file: {str(exc)[:300]}")
    finally:
        if fh is not None:
            fh.close()
    return out


def _read(f: Any, out: _Parsed, max_config: int) -> None:
    _links(f, out)
    attrs = f.attrs
    detail = "model_config attribute"
    if "model_config" in attrs:
        out.format = "keras-h5"
        size = attrs.get_id("model_config").get_storage_size()
        if size > max_config:
            out.report("limit-exceeded", f"model_config attribute of {size} bytes exceeds the "
                       f"{max_config}-byte bound", detail)
            return
        raw: Any = attrs["model_config"]
        if hasattr(raw, "tobytes") and not isinstance(raw, bytes | str):
            raw = raw.tobytes()
        if not isinstance(raw, bytes | str):
            out.report("scan-error", f"model_config attribute has unexpected type "
                       f"{type(raw).__name__}", detail)
            return
        out.config = raw
        return
    kind = "Keras weights" if "layer_names" in attrs or "keras_version" in attrs else "data"
    out.report(HDF5_DATA.id, f"HDF5 {kind}; no model_config attribute")


# --------------------------------------------------------------------------- sandbox


def _parse_sandboxed(source: Source, ctx: ScanContext) -> _Parsed | None:
    """Run :func:`_parse` in a forked child; report and return None when the child dies,
    overruns its bounds or answers nonsense."""
    import h5py  # noqa: F401  (imported once here, not again in every child)

    max_answer = 2 * ctx.limits.max_text_bytes + MiB
    rfd, wfd = os.pipe()
    with GUARD.fork():  # not while a remote-scan thread is inside an HTTP request
        pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(rfd)
        _child(source, ctx.limits.max_text_bytes, wfd)
    os.close(wfd)
    status: int | None = None
    try:
        raw, timed_out = _read_answer(rfd, max_answer, CHILD_TIMEOUT)
        if timed_out:
            ctx.report(HDF5_TIMEOUT, f"libhdf5 did not finish parsing within {CHILD_TIMEOUT:g} s")
            return None
        status = os.waitpid(pid, 0)[1]
    finally:
        os.close(rfd)
        if status is None:  # timed out or interrupted: the child must not outlive us
            _kill(pid)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        ctx.report(HDF5_CRASH, f"libhdf5 crashed while parsing the file (signal {sig})")
        return None
    code = os.WEXITSTATUS(status)
    if code == _EXIT_MEMORY:
        ctx.report(HDF5_CRASH, "libhdf5 exhausted the parser's memory bound "
                   f"({CHILD_MEMORY >> 20} MiB)")
        return None
    if code == _EXIT_BUG:
        raise RuntimeError(f"HDF5 reader failed: {raw[:500].decode(errors='replace')}")
    try:
        if code != 0:
            raise ValueError(f"exit status {code}")
        return _Parsed.from_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.report(HDF5_CRASH, f"the sandboxed HDF5 parser gave no valid answer ({exc})")
        return None


_EXIT_MEMORY = 3
_EXIT_BUG = 4


def _child(source: Source, max_config: int, wfd: int) -> None:
    code = 0
    try:
        try:
            _bound_child()
            answer = _parse(source, max_config).to_json()
        except MemoryError:
            code, answer = _EXIT_MEMORY, b""
        except BaseException as exc:  # a bug of ours: the parent turns it into an error
            code, answer = _EXIT_BUG, f"{type(exc).__name__}: {exc}".encode()
        view = memoryview(answer)
        while view:
            view = view[os.write(wfd, view):]
    finally:
        os._exit(code)


def _bound_child() -> None:
    import resource
    import signal

    # The parent's handlers (the CLI cleans up on SIGINT/SIGTERM) must not run here, and
    # a crash must not print into the parent's terminal (faulthandler, libhdf5 stacks).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    faulthandler.disable()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)

    with open("/proc/self/statm") as fh:
        vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vsz + CHILD_MEMORY
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    cpu = int(CHILD_TIMEOUT) + 5  # backstop should the parent die first
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or cpu < hard:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))


def _read_answer(fd: int, limit: int, timeout: float) -> tuple[bytes, bool]:
    """Read the child's answer until EOF; (bytes, timed_out). Extra bytes are dropped."""
    chunks: list[bytes] = []
    total = 0
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        block = os.read(fd, 1 << 20)
        if not block:
            return b"".join(chunks), False
        if total < limit:
            chunks.append(block)
            total += len(block)


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _links(f: Any, out: _Parsed) -> None:
    """Report external links without resolving them (visit_links never opens targets)."""
    import h5py

    seen = [0]

    def visit(name: str, link: Any) -> bool | None:
        seen[0] += 1
        if seen[0] > MAX_LINKS:
            out.report("limit-exceeded", f"more than {MAX_LINKS} HDF5 links; link check stopped")
            return True
        if isinstance(link, h5py.ExternalLink):
            out.report(HDF5_EXTERNAL.id, f"{name!r} links to {link.filename!r}:{link.path!r}",
                       f"link {name!r}")
        return None

    f.visititems_links(visit)
