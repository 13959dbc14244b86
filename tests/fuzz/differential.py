"""Differential fuzzing: generated cases (fuzz.picklegen) through the real loaders in the
oracle (soundness.oracle) and through the scanner. A divergence is a case some loader ran
a payload from while the scanner said clean or suspicious.

Used by the CI slice (tests/soundness/test_differential_slice.py) and by the long campaign
(``tools/fuzz_campaign.py --differential``).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from fuzz.picklegen import Case, generate
from soundness.oracle import Comparison, Oracle, compare

# Tag families that describe the structural class of a case (its signature).
_SIGNATURE_FAMILIES = ("call", "name", "magic", "npy", "npz", "joblib", "torch", "stream",
                       "splice", "framed", "mut")


@dataclass(frozen=True)
class DiffOutcome:
    index: int
    case: Case
    comparison: Comparison

    @property
    def executed(self) -> bool:
        """Some real loader ran something outside the allowlist (the payload worked)."""
        return bool(self.comparison.malicious_loaders)

    @property
    def diverged(self) -> bool:
        return self.comparison.divergence is not None

    @property
    def signature(self) -> str:
        """What makes two divergences the same class: the scanner's verdict, the loaders
        that ran the payload, and the container / call / naming choices."""
        c = self.comparison
        loaders = ",".join(sorted(r.loader for r in c.malicious_loaders))
        fams = sorted({t.split(":")[0] + ":" + t.split(":", 1)[1].split("=")[0]
                       if ":" in t else t for t in self.case.tags
                       if t.split(":")[0] in _SIGNATURE_FAMILIES})
        return f"divergence scanner={c.scanner.verdict} loaders={loaders} {' '.join(fams)}"


def case_for(index: int, campaign: str) -> Case:
    return generate(random.Random(f"{campaign}-{index}"))


def run_case(case: Case, index: int, oracle: Oracle, work: Path) -> DiffOutcome:
    d = work / f"case-{index}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    p = d / case.filename
    p.write_bytes(case.data)
    try:
        return DiffOutcome(index, case, compare(p, oracle=oracle))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_slice(start: int, count: int, campaign: str, oracle: Oracle,
              work: Path) -> list[DiffOutcome]:
    """A bounded, seeded slice of the campaign (deterministic for a given ``campaign``)."""
    return [run_case(case_for(i, campaign), i, oracle, work)
            for i in range(start, start + count)]
