"""The labelled benchmark set: our precision/recall, and honest labels about bandit."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_vs_bandit",
                                                  ROOT / "benchmarks" / "lint_vs_bandit.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["lint_vs_bandit"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _bench()
MANIFEST = bench.load_manifest()


@pytest.fixture(scope="module")
def bandit_hits() -> set[tuple[str, int, str]]:
    pytest.importorskip("bandit")
    return bench.run_bandit()[0]


def test_manifest_covers_every_data_file() -> None:
    on_disk = {p.name for p in bench.DATA.glob("*.py")}
    assert on_disk == set(MANIFEST["files"])
    assert len(on_disk) >= 50
    kinds = {spec["bandit"] for spec in MANIFEST["files"].values()}
    assert kinds == {"agree", "miss", "false-positive", "n/a"}


def test_mlwarden_precision_and_recall_on_every_labelled_rule() -> None:
    ours, _ = bench.run_mlwarden()
    s = bench.score(ours, bench.expected(MANIFEST, by="rule"))
    assert (s.fp, s.fn) == (0, 0), (sorted(ours - bench.expected(MANIFEST, by="rule")),
                                    sorted(bench.expected(MANIFEST, by="rule") - ours))
    assert s.tp >= 50


def test_mlwarden_beats_bandit_head_to_head() -> None:
    r = bench.compare()
    for cat in ("torch-load", "unpinned-revision", "both"):
        ours, theirs = r["categories"][cat]["mlwarden"], r["categories"][cat]["bandit"]
        assert ours["precision"] == 1.0 and ours["recall"] == 1.0
        assert theirs["f1"] < ours["f1"]
        assert theirs["fp"] > 0 and theirs["fn"] > 0


@pytest.mark.parametrize("name", sorted(n for n, s in MANIFEST["files"].items()
                                        if s["bandit"] != "n/a"))
def test_bandit_label_is_honest(name: str, bandit_hits: set[tuple[str, int, str]]) -> None:
    """Run bandit for real: a file we say it misses, it misses; an FP file, it flags."""
    spec = MANIFEST["files"][name]
    cats = bench.rule_category(MANIFEST)
    truth = {(line, cats[r]) for line, r in spec["expect"] if r in cats}
    got = {(line, cat) for f, line, cat in bandit_hits if f == name}
    if spec["bandit"] == "agree":
        assert got == truth
    elif spec["bandit"] == "miss":
        assert truth - got, "bandit finds every labelled hit here"
        assert not (got - truth)
    else:
        assert got - truth, "bandit reports nothing unlabelled here"
        assert not (truth - got)


def test_benchmark_command_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("bandit")
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "bandit" in out and "F1 ratio" in out
