"""Differential oracle: what the real loaders do with a file, against what mlwarden says.

    from soundness.oracle import run_oracle, divergence
    run_oracle(path, "torch")          # -> OracleResult (ground truth of one loader)
    divergence(path)                   # -> Divergence | None (a soundness bug) for all loaders

    python tests/soundness/oracle.py FILE_OR_REPO [--loader torch ...] [--json]

The real loaders (``pickle.load``, ``pickle.loads``, ``torch.load`` with ``weights_only``
False and True, ``joblib.load``, ``numpy.load(allow_pickle=True)``, and transformers'
``from_pretrained(trust_remote_code=True)`` on a repository directory) run in a sandboxed
fork server (``_oracle_child.py``): no network, the file system read-only except a scratch
directory, its own PID namespace (when ``unshare`` allows; else audit-hook blocking only),
resource limits, a per-case temporary cwd and HOME with planted canary secrets, and a
timeout. Ground truth: a load is malicious if it invokes a callable outside the call
allowlist (by identity), instantiates a resolved class outside it, spawns a process, opens
the network, builds code from data, writes outside its case directory, reads a canary, or
leaves a marker file. A divergence is a file some loader finds malicious while the scanner
says clean or suspicious. ``tools/`` scripts import this module with ``tests/`` on sys.path.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("_oracle_child.py")
FILE_LOADERS = ("pickle", "pickle-loads", "torch", "torch-weights-only", "joblib", "numpy")
DIRECTORY_LOADERS = ("transformers",)
LOADERS = FILE_LOADERS + DIRECTORY_LOADERS
MARKER = "mlw-oracle-marker"  # a payload that touches this name in its cwd is caught
DEFAULT_TIMEOUT = 20.0
_PRELOAD = ("numpy", "torch", "joblib", "sklearn", "scipy.sparse")
_TRANSFORMERS_PRELOAD = ("AutoConfig", "AutoModel", "AutoTokenizer", "PreTrainedModel",
                         "PretrainedConfig", "PreTrainedTokenizer", "GenerationMixin",
                         "PreTrainedTokenizerFast")


@dataclass(frozen=True)
class Event:
    kind: str  # resolve, call, class-call, process, network, code, file, canary, ...
    detail: str
    violation: bool


@dataclass(frozen=True)
class OracleResult:
    """What one real loader did with one file."""

    path: str
    loader: str
    status: str  # ok | error | blocked | timeout | crash (...) | oracle-error
    error: str = ""
    events: tuple[Event, ...] = ()
    markers: tuple[str, ...] = ()  # files the load left in its case directory
    seconds: float = 0.0

    @property
    def violations(self) -> tuple[Event, ...]:
        return tuple(e for e in self.events if e.violation)

    @property
    def resolved(self) -> tuple[str, ...]:
        return tuple(e.detail for e in self.events if e.kind == "resolve")

    @property
    def malicious(self) -> bool:
        return bool(self.violations or self.markers)

    def reasons(self) -> list[str]:
        out = [f"{e.kind}: {e.detail}" for e in self.violations]
        out += [f"marker file left: {m}" for m in self.markers]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "loader": self.loader, "status": self.status,
                "error": self.error, "malicious": self.malicious, "reasons": self.reasons(),
                "resolved": list(self.resolved), "seconds": self.seconds}


@lru_cache(maxsize=1)
def allow_call() -> frozenset[str]:
    """Names the oracle lets a load call: the scanner allowlist's exact call entries.

    Sharing the list is deliberate: the oracle judges whether the scanner's *model of the
    loader* is sound. Whether an allowlisted callable has effects is judged independently
    (audit hook, markers), and a name counts only as the object it really is.
    """
    from mlwarden.scan.knowledge import allowlist

    return frozenset(n for n, s in allowlist.NAMES.items() if s.uses & allowlist.C)


@lru_cache(maxsize=1)
def sandbox_prefix() -> tuple[str, ...]:
    """The strongest ``unshare`` this machine allows (network, mounts, PIDs)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for flags in (("-mnpf", "--propagation", "private", "--mount-proc"),
                  ("-rmnpf", "--propagation", "private", "--mount-proc"),
                  ("-rn",), ("-n",)):
        try:
            ok = subprocess.run([unshare, *flags, "true"], capture_output=True,
                                timeout=10).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return (unshare, *flags)
    return ()


_SANDBOX_SH = r"""
mode=none
case " $MLW_UNSHARE " in *n*) mode=net;; esac
if [ -n "$MLW_MOUNTS" ] && mount --bind "$MLW_SCRATCH" "$MLW_SCRATCH" 2>/dev/null \
   && mount -o remount,bind,ro / 2>/dev/null; then
  mode="$mode+readonly-fs"
  mount -o remount,bind,ro /dev/shm 2>/dev/null || true
fi
case " $MLW_UNSHARE " in *p*) mode="$mode+pid";; esac
MLW_ORACLE_SANDBOX=$mode exec "$@"
"""


class Oracle:
    """A fork server running the real loaders; use as a context manager or close()."""

    def __init__(self, *, loaders: Sequence[str] = FILE_LOADERS, timeout: float =
                 DEFAULT_TIMEOUT, memory_mib: int = 2048, sandbox: bool = True,
                 scratch: Path | None = None, debug: bool = False) -> None:
        self.loaders = tuple(loaders)
        self.timeout = timeout
        self.memory_mib = memory_mib
        self.sandbox = sandbox
        self.debug = debug
        self._own_scratch = scratch is None
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="mlw-oracle-")).resolve()
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ server
    def _start(self) -> subprocess.Popen[str]:
        preload = list(_PRELOAD)
        if "transformers" in self.loaders:
            preload.append("transformers:" + ",".join(_TRANSFORMERS_PRELOAD))
        cfg = {"scratch": str(self.scratch / "cases"), "allow_call": sorted(allow_call()),
               "memory_mib": self.memory_mib, "preload": preload, "debug": self.debug}
        prefix = sandbox_prefix() if self.sandbox else ()
        env = {k: v for k, v in os.environ.items()
               if not k.upper().endswith(("_PROXY", "TOKEN", "_KEY", "SECRET"))}
        env.update({"PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                    "MLW_SCRATCH": str(self.scratch), "MLW_UNSHARE": " ".join(prefix[1:2]),
                    "MLW_MOUNTS": "1" if any("m" in f for f in prefix[1:2]) else "",
                    "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        (self.scratch / "cases").mkdir(parents=True, exist_ok=True)
        cmd = [*prefix, "sh", "-c", _SANDBOX_SH, "oracle", sys.executable, str(CHILD),
               json.dumps(cfg)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL if not self.debug else None,
                                text=True, bufsize=1, env=env, cwd=str(self.scratch))
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError("the oracle server did not start")
        self.info = json.loads(line)
        self.proc = proc
        return proc

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    @property
    def sandbox_mode(self) -> str:
        if self.proc is None:
            self._start()
        return str(self.info.get("sandbox", "none"))

    # ------------------------------------------------------------------ requests
    def run(self, path: str | os.PathLike[str], loader: str, *,
            timeout: float | None = None) -> OracleResult:
        """Load ``path`` with ``loader`` in a fresh sandboxed fork and report what ran."""
        limit = self.timeout if timeout is None else timeout
        if loader not in LOADERS:
            raise ValueError(f"unknown loader {loader!r}; choose from {', '.join(LOADERS)}")
        p = str(Path(path).resolve())
        with self._lock:
            for attempt in (1, 2):
                proc = self.proc or self._start()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(json.dumps({"path": p, "loader": loader,
                                                 "timeout": limit}) + "\n")
                    proc.stdin.flush()
                    line = _readline(proc, limit + 60)
                except (BrokenPipeError, OSError, TimeoutError):
                    line = None
                if line:
                    break
                self._restart()
                if attempt == 2:
                    return OracleResult(p, loader, "oracle-error", "the server died")
        reply = json.loads(line)
        events = tuple(Event(e["kind"], e["detail"], bool(e["violation"]))
                       for e in reply["events"])
        return OracleResult(p, loader, reply["status"], reply.get("error", ""), events,
                            tuple(reply.get("markers", ())), float(reply.get("seconds", 0)))

    def run_all(self, path: str | os.PathLike[str],
                loaders: Iterable[str] | None = None) -> tuple[OracleResult, ...]:
        chosen = tuple(loaders) if loaders is not None else (
            DIRECTORY_LOADERS if Path(path).is_dir() else FILE_LOADERS)
        return tuple(self.run(path, ld) for ld in chosen if ld in self.loaders)

    def _restart(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()


def _readline(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()),  # type: ignore[union-attr]
                         daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError("oracle server did not answer")
    return box[0] if box and box[0] else None


_shared: dict[tuple[str, ...], Oracle] = {}


def shared_oracle(loaders: Sequence[str] = FILE_LOADERS) -> Oracle:
    """One server per loader set for the whole process, closed at exit."""
    key = tuple(loaders)
    if key not in _shared:
        _shared[key] = Oracle(loaders=key)
        atexit.register(_shared[key].close)
    return _shared[key]


def run_oracle(path: str | os.PathLike[str], loader: str, *,
               oracle: Oracle | None = None) -> OracleResult:
    """Ground truth of one loader on one file (or repository directory)."""
    o = oracle or shared_oracle(DIRECTORY_LOADERS if loader in DIRECTORY_LOADERS
                                else FILE_LOADERS)
    return o.run(path, loader)


# ---------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class ScannerView:
    verdict: str  # clean | suspicious | unscannable | malicious
    findings: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Divergence:
    """A soundness bug: a real loader ran something the scanner did not call malicious."""

    path: str
    scanner: ScannerView
    oracle: tuple[OracleResult, ...]  # the loaders that found the file malicious

    def describe(self) -> str:
        lines = [f"{self.path}: scanner says {self.scanner.verdict}"
                 f" ({', '.join(self.scanner.formats)}); real loaders disagree:"]
        for r in self.oracle:
            lines.append(f"  {r.loader} [{r.status}]: " + "; ".join(r.reasons()[:6]))
        lines += [f"  scanner: {f}" for f in self.scanner.findings[:8]]
        return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    path: str
    scanner: ScannerView
    oracle: tuple[OracleResult, ...] = field(default_factory=tuple)

    @property
    def malicious_loaders(self) -> tuple[OracleResult, ...]:
        return tuple(r for r in self.oracle if r.malicious)

    @property
    def divergence(self) -> Divergence | None:
        bad = self.malicious_loaders
        if bad and self.scanner.verdict in ("clean", "suspicious"):
            return Divergence(self.path, self.scanner, bad)
        return None

    @property
    def false_alarm(self) -> bool:
        """The scanner says malicious but every loader that loaded it ran nothing bad."""
        loaded = [r for r in self.oracle if r.status == "ok"]
        return (self.scanner.verdict == "malicious" and bool(loaded)
                and not self.malicious_loaders)


def scan_verdict(path: str | os.PathLike[str], *, cli: bool = False) -> ScannerView:
    """What ``mlwarden scan`` says about ``path`` (in-process, or the real CLI)."""
    if cli:
        out = subprocess.run([sys.executable, "-m", "mlwarden.cli.main", "scan", "--format",
                              "json", "--no-hash", str(path)], capture_output=True,
                             text=True, timeout=600)
        doc = json.loads(out.stdout)
        files = doc["files"]
        verdict = doc["summary"]["verdict"]
        findings = tuple(f"{f['rule']}: {f['message'][:160]}" for fr in files
                         for f in fr["findings"] if f["verdict"] != "clean")
        return ScannerView(verdict, findings, tuple(sorted({fr["format"] for fr in files})))
    from mlwarden.scan.engine import ScanOptions, scan_paths

    report = scan_paths([str(path)], ScanOptions(workers=1, hash="never"))
    findings = tuple(f"{f.rule}: {f.message[:160]}" for fr in report.files
                     for f in fr.findings if f.verdict.value != "clean")
    return ScannerView(report.verdict.value, findings,
                       tuple(sorted({fr.format for fr in report.files})))


def compare(path: str | os.PathLike[str], *, loaders: Iterable[str] | None = None,
            oracle: Oracle | None = None, cli: bool = False) -> Comparison:
    """The scanner's verdict beside every applicable loader's ground truth."""
    is_dir = Path(path).is_dir()
    o = oracle or shared_oracle(DIRECTORY_LOADERS if is_dir else FILE_LOADERS)
    results = o.run_all(path, loaders)
    return Comparison(str(path), scan_verdict(path, cli=cli), results)


def divergence(path: str | os.PathLike[str], *, loaders: Iterable[str] | None = None,
               oracle: Oracle | None = None, cli: bool = False) -> Divergence | None:
    """A soundness bug for ``path``, or None when the scanner is at least as strict."""
    return compare(path, loaders=loaders, oracle=oracle, cli=cli).divergence


# ---------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run the real loaders on a file in the "
                                             "sandbox and compare with mlwarden scan.")
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--loader", action="append", choices=LOADERS)
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args(argv)
    loaders = tuple(args.loader or LOADERS)
    diverged = 0
    with Oracle(loaders=loaders, timeout=args.timeout, debug=args.debug) as o:
        for p in args.paths:
            c = compare(p, loaders=[ld for ld in loaders
                                    if (ld in DIRECTORY_LOADERS) == p.is_dir()], oracle=o)
            diverged += c.divergence is not None
            if args.json:
                print(json.dumps({"path": str(p), "scanner": c.scanner.verdict,
                                  "divergence": c.divergence is not None,
                                  "sandbox": o.sandbox_mode,
                                  "oracle": [r.to_dict() for r in c.oracle]}))
                continue
            print(f"{p}: scanner {c.scanner.verdict}; sandbox {o.sandbox_mode}")
            for r in c.oracle:
                verdict = "MALICIOUS" if r.malicious else "benign"
                print(f"  {r.loader:20} {verdict:10} {r.status:10} {r.error[:100]}")
                for reason in r.reasons()[:8]:
                    print(f"      {reason}")
            if c.divergence:
                print("  DIVERGENCE: the scanner is not at least as strict as the loaders")
    return 1 if diverged else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
