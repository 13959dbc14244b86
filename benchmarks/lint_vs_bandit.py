"""Benchmark `mlwarden lint` against bandit B614 (torch.load) and B615 (unpinned Hub downloads).

    python benchmarks/lint_vs_bandit.py [--data DIR] [--json] [--verbose]

Both tools run on the labelled files in benchmarks/data/lint (see manifest.json). A hit is
(file, line, category); categories map our rules onto bandit's two checks. Prints precision,
recall and F1 per tool and category, the F1 ratio, and our figures over all labelled rules.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "lint"
Hit = tuple[str, int, str]  # (file name, line, category or rule id)


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load_manifest(data: Path = DATA) -> dict:
    return json.loads((data / "manifest.json").read_text())


def rule_category(manifest: dict) -> dict[str, str]:
    return {r: cat for cat, spec in manifest["categories"].items() for r in spec["rules"]}


def head_to_head_files(manifest: dict) -> set[str]:
    """Files in the bandit comparison ("n/a" files exercise rules bandit has no check for)."""
    return {n for n, spec in manifest["files"].items() if spec["bandit"] != "n/a"}


def expected(manifest: dict, by: str = "category") -> set[Hit]:
    """Labelled hits: (file, line, category) on head-to-head files, or (file, line, rule)
    on every file."""
    cats = rule_category(manifest)
    h2h = head_to_head_files(manifest)
    out: set[Hit] = set()
    for name, spec in manifest["files"].items():
        if by != "rule" and name not in h2h:
            continue
        for line, rule in spec["expect"]:
            if by == "rule":
                out.add((name, line, rule))
            elif rule in cats:
                out.add((name, line, cats[rule]))
    return out


def run_mlwarden(data: Path = DATA) -> tuple[set[Hit], float]:
    """(file, line, rule) for every finding of `mlwarden lint` on the data set."""
    from mlwarden.lint.engine import lint_paths

    manifest = load_manifest(data)
    start = time.perf_counter()
    report = lint_paths([str(data / n) for n in sorted(manifest["files"])])
    elapsed = time.perf_counter() - start
    hits = {(Path(fr.path).name, f.location.line or 0 if f.location else 0, f.rule)
            for fr in report.files for f in fr.findings}
    return hits, elapsed


def run_bandit(data: Path = DATA) -> tuple[set[Hit], float]:
    """(file, line, category) for bandit's B614/B615 results on the data set."""
    manifest = load_manifest(data)
    by_test = {spec["bandit"]: cat for cat, spec in manifest["categories"].items()}
    files = [str(data / n) for n in sorted(manifest["files"])]
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-f", "json", "-t", ",".join(by_test), *files],
        capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise RuntimeError(f"bandit failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    doc = json.loads(proc.stdout)
    if doc.get("errors"):
        raise RuntimeError(f"bandit reported errors: {doc['errors']}")
    hits = {(Path(r["filename"]).name, int(r["line_number"]), by_test[r["test_id"]])
            for r in doc["results"] if r["test_id"] in by_test}
    return hits, elapsed


def score(found: set[Hit], truth: set[Hit], category: str | None = None) -> Score:
    if category is not None:
        found = {h for h in found if h[2] == category}
        truth = {h for h in truth if h[2] == category}
    return Score(len(found & truth), len(found - truth), len(truth - found))


def compare(data: Path = DATA) -> dict:
    manifest = load_manifest(data)
    cats = rule_category(manifest)
    ours_rules, ours_s = run_mlwarden(data)
    h2h = head_to_head_files(manifest)
    ours = {(f, line, cats[r]) for f, line, r in ours_rules if r in cats and f in h2h}
    theirs, bandit_s = run_bandit(data)
    theirs = {h for h in theirs if h[0] in h2h}
    truth = expected(manifest)
    result: dict = {"files": len(manifest["files"]), "head_to_head_files": len(h2h),
                    "labelled_hits": len(truth),
                    "seconds": {"mlwarden": round(ours_s, 3), "bandit": round(bandit_s, 3)},
                    "categories": {}}
    for cat in [*manifest["categories"], None]:
        key = cat or "both"
        a, b = score(ours, truth, cat), score(theirs, truth, cat)
        result["categories"][key] = {
            "mlwarden": _fig(a), "bandit": _fig(b),
            "f1_ratio": round(a.f1 / b.f1, 2) if b.f1 else None,
        }
    all_rules = score(ours_rules, expected(manifest, by="rule"))
    result["mlwarden_all_rules"] = _fig(all_rules)
    result["bandit_missed"] = sorted(truth - theirs)
    result["bandit_false_positives"] = sorted(theirs - truth)
    result["mlwarden_missed"] = sorted(expected(manifest, by="rule") - ours_rules)
    result["mlwarden_false_positives"] = sorted(ours_rules - expected(manifest, by="rule"))
    return result


def _fig(s: Score) -> dict:
    return {"tp": s.tp, "fp": s.fp, "fn": s.fn, "precision": round(s.precision, 3),
            "recall": round(s.recall, 3), "f1": round(s.f1, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", action="store_true", help="print the full result as JSON")
    ap.add_argument("--verbose", "-v", action="store_true", help="list misses and FPs")
    args = ap.parse_args(argv)
    r = compare(args.data)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['files']} labelled files; head to head on {r['head_to_head_files']} of them "
          f"with {r['labelled_hits']} labelled B614/B615-class hits")
    print(f"{'category':18} {'tool':9} {'TP':>3} {'FP':>3} {'FN':>3} "
          f"{'precision':>9} {'recall':>7} {'F1':>6}  F1 ratio")
    for cat, row in r["categories"].items():
        for tool in ("mlwarden", "bandit"):
            s = row[tool]
            ratio = (f"{row['f1_ratio']:.2f}x" if row["f1_ratio"] else "n/a") \
                if tool == "mlwarden" else ""
            print(f"{cat:18} {tool:9} {s['tp']:>3} {s['fp']:>3} {s['fn']:>3} "
                  f"{s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}  {ratio}")
    a = r["mlwarden_all_rules"]
    print(f"mlwarden, all labelled lint rules: precision {a['precision']:.3f}, "
          f"recall {a['recall']:.3f}, F1 {a['f1']:.3f} ({a['tp']} TP, {a['fp']} FP, "
          f"{a['fn']} FN)")
    print(f"time: mlwarden {r['seconds']['mlwarden']:.2f}s in-process, "
          f"bandit {r['seconds']['bandit']:.2f}s (subprocess)")
    if args.verbose:
        for key in ("bandit_missed", "bandit_false_positives", "mlwarden_missed",
                    "mlwarden_false_positives"):
            print(f"{key}:")
            for hit in r[key]:
                print(f"  {hit[0]}:{hit[1]} {hit[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
