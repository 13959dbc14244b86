"""A bounded, seeded slice of the differential campaign (tools/fuzz_campaign.py
--differential): generated payload files through the real loaders (oracle) and the scanner.
No file that a real loader runs a payload from may be called clean or suspicious."""

from __future__ import annotations

from pathlib import Path

from fuzz.differential import run_slice
from soundness.oracle import Oracle

SLICE = 150  # about a minute on two cores


def test_generated_payloads_never_diverge(oracle: Oracle, tmp_path: Path) -> None:
    outcomes = run_slice(0, SLICE, "ci", oracle, tmp_path)
    executed = [o for o in outcomes if o.executed]
    # The generator is only useful if most cases really run their payload somewhere.
    assert len(executed) > SLICE // 2, f"only {len(executed)} of {SLICE} ran a payload"
    diverged = [o for o in outcomes if o.diverged]
    assert not diverged, "\n\n".join(
        f"case {o.index} ({o.case.name}):\n{o.comparison.divergence.describe()}"  # type: ignore[union-attr]
        for o in diverged[:5])
