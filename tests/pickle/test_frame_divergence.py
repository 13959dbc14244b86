"""FRAME-boundary divergence (gh-154848): CPython's C unpickler, loading a file, drops the
rest of a frame when a read crosses its end. The verified sample really executes under
CPython (checked in a subprocess, payload only creates a marker file); we call both
samples malicious and report the boundary violation itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from corpus.pickles import malicious_samples
from mlwarden.report.model import Verdict

_LOADER = """
import pickle, sys
mode = sys.argv[2]
try:
    if mode == "file":
        with open(sys.argv[1], "rb") as fh:
            pickle.load(fh)
    else:
        pickle.loads(open(sys.argv[1], "rb").read())
except Exception as exc:
    print(type(exc).__name__)
"""


def _load_in_subprocess(tmp_path: Path, data: bytes, mode: str) -> None:
    sample = tmp_path / "sample.pkl"
    sample.write_bytes(data)
    subprocess.run([sys.executable, "-c", _LOADER, str(sample), mode], cwd=tmp_path,
                   check=True, capture_output=True, timeout=60)


def test_cpython_executes_verified_sample_only_from_a_file(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = malicious_samples(str(marker))["frame-divergence-cpython311"]
    _load_in_subprocess(tmp_path, data, "bytes")
    assert not marker.exists(), "pickle.loads reads linearly: the payload is data"
    _load_in_subprocess(tmp_path, data, "file")
    assert marker.exists(), "the C unpickler loading a file executes the hidden payload"


def test_described_sample_does_not_run_on_cpython_311(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    data = malicious_samples(str(marker))["frame-divergence-described"]
    _load_in_subprocess(tmp_path, data, "file")
    assert not marker.exists()


def test_both_samples_are_malicious_with_boundary_finding(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    samples = malicious_samples("/nonexistent/MARKER")
    for name, view in (("frame-divergence-cpython311", "C file-load view"),
                       ("frame-divergence-described", "hidden in data")):
        ctx = scan_bytes(samples[name])
        assert ctx.verdict is Verdict.MALICIOUS
        rules = {f.rule for f in ctx.findings}
        assert "pickle-frame-divergence" in rules
        danger = [f for f in ctx.findings if f.rule == "pickle-dangerous-callable"]
        assert danger and "builtins.open" in danger[0].message
        assert danger[0].location is not None and view in str(danger[0].location.detail)


def test_benign_framed_pickles_have_no_divergence(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    import pickle

    big = {f"k{i}": ("v" * (i % 50), i, [i] * 3) for i in range(20000)}
    ctx = scan_bytes(pickle.dumps(big, protocol=5))
    assert ctx.findings == []
