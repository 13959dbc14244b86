"""Run one input through the real scan (``scan_paths`` on a file on disk) and classify it.

A failure is:
- ``internal-error``: an exception escaped a reader (the engine turned it into a finding);
  the traceback is captured at that moment, while the exception is still being handled;
- ``timeout``: the scan took longer than the budget (an interval timer interrupts it);
- ``memory``: Python allocations peaked above the bound (tracemalloc);
- crashes of the process itself are caught one level up, by the campaign's supervisor.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.report.model import Report
from mlwarden.scan import context as scan_context
from mlwarden.scan.engine import ScanOptions, scan_paths

TIME_BUDGET = 2.0  # seconds per input
MEMORY_BOUND = 256 << 20  # bytes of Python allocations per input


class FuzzTimeout(BaseException):
    """Raised by the interval timer inside a scan that overran its budget."""


@dataclass(frozen=True)
class Outcome:
    kind: str | None  # None (fine), "internal-error", "timeout", "memory"
    detail: str
    seconds: float
    peak: int
    verdict: str | None = None

    @property
    def signature(self) -> str:
        """What makes two failures the same bug: kind + innermost frame of our code."""
        if self.kind != "internal-error":
            return f"{self.kind}"
        frames = [ln.strip() for ln in self.detail.splitlines() if ln.strip().startswith(
            "File ") and "mlwarden" in ln]
        last = frames[-1] if frames else "?"
        exc = self.detail.strip().splitlines()[-1].split(":")[0] if self.detail else "?"
        return f"internal-error {exc} @ {last}"


@contextmanager
def _captured_internal_errors(sink: list[str]) -> Iterator[None]:
    """Record the traceback of every exception the engine turns into internal-error."""
    original = scan_context.ScanContext.report

    def report(self: Any, r: Any, message: str, location: Any = None) -> Any:
        if r.id == "internal-error":
            exc = sys.exc_info()[1]
            sink.append("".join(traceback.format_exception(exc)) if exc else message)
        return original(self, r, message, location)

    setattr(scan_context.ScanContext, "report", report)
    try:
        yield
    finally:
        setattr(scan_context.ScanContext, "report", original)


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise FuzzTimeout(f"scan exceeded {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_path(path: Path, *, budget: float = TIME_BUDGET, memory: int = MEMORY_BOUND,
             trace_memory: bool = True) -> Outcome:
    """Scan ``path`` in-process and classify the result."""
    errors: list[str] = []
    report: Report | None = None
    if trace_memory:
        tracemalloc.start(1)
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    kind: str | None = None
    detail = ""
    try:
        with _captured_internal_errors(errors), _time_limit(budget):
            report = scan_paths([str(path)], ScanOptions(workers=1, hash="never"))
    except FuzzTimeout as exc:
        kind, detail = "timeout", "".join(traceback.format_exception(exc))
    except Exception as exc:  # escaped the engine itself
        kind, detail = "internal-error", "".join(traceback.format_exception(exc))
    finally:
        took = time.perf_counter() - t0
        peak = 0
        if trace_memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if kind is None and errors:
        kind, detail = "internal-error", errors[0]
    if kind is None and peak > memory:
        kind, detail = "memory", f"peak {peak >> 20} MiB of Python allocations"
    if kind is None and took > budget:
        kind, detail = "timeout", f"took {took:.2f} s"
    verdict = None
    if report is not None and report.files:
        verdict = report.files[0].verdict.value
    return Outcome(kind, detail, took, peak, verdict)
