"""Divergences the campaign found stay fixed: each file really runs its payload under a
real loader (oracle) and the scanner calls it malicious or unscannable."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundness.oracle import Oracle, scan_verdict
from soundness.regressions import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_divergence_stays_fixed(name: str, oracle: Oracle, tmp_path: Path) -> None:
    filename, data = CASES[name]()
    p = tmp_path / filename
    p.write_bytes(data)
    ran = [r for r in oracle.run_all(p) if r.malicious]
    assert ran, f"{name}: no real loader runs the payload; the case is not a divergence"
    view = scan_verdict(p)
    assert view.verdict in ("malicious", "unscannable"), (name, view)
