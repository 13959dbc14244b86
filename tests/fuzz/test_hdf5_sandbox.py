"""The HDF5 sandbox: libhdf5 runs in a forked child, so its crashes, hangs and memory
blowups become findings and the scanning process survives. The child's misbehaviour is
simulated here (independent of which libhdf5 bugs exist); test_regressions.py replays the
real crashers the campaign found."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from corpus import formats as cf
from mlwarden.report.model import FileResult
from mlwarden.scan.engine import ScanOptions, scan_paths
from mlwarden.scan.readers import hdf5_file

pytestmark = pytest.mark.skipif(not hdf5_file.SANDBOX, reason="needs os.fork")


def _scan(path: Path) -> FileResult:
    return scan_paths([str(path)], ScanOptions(workers=1, hash="never")).files[0]


def _rules(r: FileResult) -> set[str]:
    return {f.rule for f in r.findings}


@pytest.fixture
def h5(tmp_path: Path) -> Path:
    return cf.keras2_h5(tmp_path / "model.h5", [cf.keras2_lambda_layer()])


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pids of the children the reader forks."""
    pids: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sandbox_gives_the_same_findings_as_in_process(h5: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py

    data = tmp_path / "data.h5"
    with h5py.File(data, "w") as f:
        f["x"] = [1, 2, 3]
        f["ext"] = h5py.ExternalLink("/etc/passwd", "/root")
    sandboxed = [_scan(h5), _scan(data)]
    monkeypatch.setattr(hdf5_file, "SANDBOX", False)
    direct = [_scan(h5), _scan(data)]
    assert [(r.format, r.verdict, r.findings) for r in sandboxed] == \
        [(r.format, r.verdict, r.findings) for r in direct]
    assert "keras-lambda-bytecode" in _rules(sandboxed[0])
    assert "hdf5-external-link" in _rules(sandboxed[1])


def test_segfault_in_the_parser_is_a_finding(h5: Path, children: list[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_: Any) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(hdf5_file, "_parse", crash)
    r = _scan(h5)
    assert r.verdict.value == "unscannable"
    crash_findings = [f for f in r.findings if f.rule == "hdf5-parser-crash"]
    assert crash_findings and f"signal {int(signal.SIGSEGV)}" in crash_findings[0].message
    assert children and all(_gone(p) for p in children)


def test_hang_in_the_parser_times_out_and_the_child_is_killed(
        h5: Path, children: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hdf5_file, "_parse", lambda *_: time.sleep(60))
    monkeypatch.setattr(hdf5_file, "CHILD_TIMEOUT", 0.5)
    t0 = time.perf_counter()
    r = _scan(h5)
    assert time.perf_counter() - t0 < 5
    assert _rules(r) == {"hdf5-parser-timeout"}
    assert children and all(_gone(p) for p in children)


def test_memory_blowup_in_the_parser_hits_the_child_bound(
        h5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hog(*_: Any) -> None:
        blocks = []
        while True:  # real allocations, stopped by the child's RLIMIT_AS
            blocks.append(bytearray(64 << 20))

    monkeypatch.setattr(hdf5_file, "_parse", hog)
    monkeypatch.setattr(hdf5_file, "CHILD_MEMORY", 256 << 20)
    monkeypatch.setattr(hdf5_file, "CHILD_TIMEOUT", 15.0)  # filling 256 MiB takes a while
    r = _scan(h5)
    assert _rules(r) == {"hdf5-parser-crash"}
    assert "memory bound" in r.findings[0].message


def test_a_child_answer_outside_the_schema_is_rejected(
        h5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child compromised through libhdf5 controls its answer; it cannot name rules the
    HDF5 reader does not own (here: claim a clean non-HDF5 finding)."""

    class Forged:
        def to_json(self) -> bytes:
            return b'{"format": "hdf5", "events": [["not-analysed", "all fine", null]]}'

    monkeypatch.setattr(hdf5_file, "_parse", lambda *_: Forged())
    r = _scan(h5)
    assert _rules(r) == {"hdf5-parser-crash"}
    assert "no valid answer" in r.findings[0].message


def test_a_bug_of_ours_in_the_child_is_an_internal_error(
        h5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own exceptions are not disguised as a malformed file."""

    def bug(*_: Any) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(hdf5_file, "_parse", bug)
    r = _scan(h5)
    assert _rules(r) == {"internal-error"}
    assert "ZeroDivisionError: oops" in r.findings[0].message
