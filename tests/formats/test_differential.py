"""Differential slice (CI): generated files of the non-pickle formats (tests/fuzz/formatgen)
are loaded by the real loaders in the sandboxed oracle and scanned; a file any loader ran a
payload from must be malicious. The long campaign is tools/format_differential.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.formatgen import generate
from soundness.oracle import Oracle, compare

SLICE = 60
CAMPAIGN = "ci-formats"


@pytest.fixture(scope="module")
def format_oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    with Oracle(scratch=tmp_path_factory.mktemp("oracle-formats"), timeout=20) as o:
        yield o


def test_generated_format_files_never_diverge(format_oracle: Oracle, tmp_path: Path) -> None:
    divergences, executed = [], 0
    for i in range(SLICE):
        case = generate(random.Random(f"{CAMPAIGN}-{i}"))
        d = tmp_path / str(i)
        d.mkdir()
        p = d / case.filename
        p.write_bytes(case.data)
        c = compare(p, oracle=format_oracle)
        executed += bool(c.malicious_loaders)
        if c.divergence is not None:
            divergences.append(f"[{case.name}] {c.divergence.describe()}")
    assert not divergences, "\n\n".join(divergences[:5])
    assert executed >= SLICE // 5, f"only {executed} cases ran their payload"
