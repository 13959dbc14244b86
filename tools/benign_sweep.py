#!/usr/bin/env python
"""Full benign sweep (issue 11 item 5): every scikit-learn estimator that fits on a toy
dataset (pickled and joblib-dumped), torch training state, numpy / scipy.sparse / pandas
objects, pipelines with ufuncs, and the data files joblib and numpy ship; each is scanned
and every file that is not clean is listed with its findings.

    python tools/benign_sweep.py [--out DIR] [--json]

The test suite runs a representative slice (tests/soundness/test_benign_corpora.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    from corpus.benign_libraries import shipped_data_files, write_all
    from mlwarden.scan.engine import ScanOptions, scan_paths

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="mlw-benign-"))
    written = write_all(out)
    shipped = shipped_data_files()
    report = scan_paths([str(out), *map(str, shipped)], ScanOptions(hash="never"))
    counts = collections.Counter(f.verdict.value for f in report.files)
    bad = [f for f in report.files if f.verdict.value != "clean"]
    if args.json:
        print(json.dumps({"generated": len(written), "shipped": len(shipped),
                          "verdicts": counts, "not_clean": [
                              {"path": f.path, "verdict": f.verdict.value,
                               "findings": [x.message for x in f.findings
                                            if x.verdict.value != "clean"]} for f in bad]},
                         indent=1))
    else:
        print(f"{len(written)} generated files, {len(shipped)} shipped data files; "
              f"{len(report.files)} entries scanned: {dict(counts)}")
        for f in bad:
            print(f"  {f.verdict.value:12} {f.path}")
            for x in f.findings:
                if x.verdict.value != "clean":
                    print(f"      {x.rule}: {x.message[:160]}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
