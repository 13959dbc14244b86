"""Typosquat detection benchmark: precision and recall of `mlwarden deps` name checks on a
labelled name list, against a naive Levenshtein<=2 baseline.

    python benchmarks/typosquat.py [--labelled benchmarks/data/typosquat/labelled.tsv] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from mlwarden.deps import malicious, typosquat

HERE = Path(__file__).resolve().parent
LABELLED = HERE / "data" / "typosquat" / "labelled.tsv"
BASELINE_TOP = 5000


@dataclass(frozen=True)
class Score:
    detector: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load(path: Path = LABELLED) -> list[tuple[str, bool]]:
    rows: list[tuple[str, bool]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, label = line.split("\t")[:2]
        rows.append((name, label == "squat"))
    return rows


def typosquat_only(name: str) -> bool:
    return typosquat.check(name) is not None


def mlwarden_names(name: str) -> bool:
    """What `mlwarden deps` flags by name: known-malicious list, then typosquat scoring."""
    return malicious.lookup(name) is not None or typosquat.check(name) is not None


def naive_baseline(name: str) -> bool:
    """Levenshtein distance <= 2 to any of the top names other than the name itself."""
    canon = str(canonicalize_name(name))
    top = list(typosquat.popular().rank)[:BASELINE_TOP]
    hits = process.extract(canon, top, scorer=Levenshtein.distance, score_cutoff=2, limit=3)
    return any(t != canon for t, _, _ in hits)


def score(label: str, detect: object, rows: list[tuple[str, bool]]) -> Score:
    tp = fp = fn = tn = 0
    for name, is_squat in rows:
        flagged = bool(detect(name))  # type: ignore[operator]
        tp += flagged and is_squat
        fp += flagged and not is_squat
        fn += (not flagged) and is_squat
        tn += (not flagged) and not is_squat
    return Score(label, tp, fp, fn, tn)


def run(path: Path = LABELLED) -> list[Score]:
    rows = load(path)
    return [score("mlwarden (known-malicious + typosquat)", mlwarden_names, rows),
            score("mlwarden typosquat scoring only", typosquat_only, rows),
            score(f"naive Levenshtein<=2 (top {BASELINE_TOP})", naive_baseline, rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--labelled", type=Path, default=LABELLED)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--errors", action="store_true", help="List misclassified names.")
    args = ap.parse_args(argv)
    scores = run(args.labelled)
    if args.json:
        print(json.dumps([{**asdict(s), "precision": round(s.precision, 4),
                           "recall": round(s.recall, 4)} for s in scores], indent=2))
    else:
        rows = load(args.labelled)
        print(f"{len(rows)} names ({sum(1 for _, s in rows if s)} squats)")
        print(f"{'detector':45} {'precision':>9} {'recall':>7}   tp  fp  fn  tn")
        for s in scores:
            print(f"{s.detector:45} {s.precision:9.3f} {s.recall:7.3f} {s.tp:4} {s.fp:3} "
                  f"{s.fn:3} {s.tn:3}")
    if args.errors:
        for name, is_squat in load(args.labelled):
            if mlwarden_names(name) != is_squat:
                print(("missed  " if is_squat else "false+  ") + name, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
