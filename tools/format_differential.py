#!/usr/bin/env python
"""Differential campaign over the non-pickle formats (run locally, not in CI).

    python tools/format_differential.py --minutes 30 [--start 0] [--out /tmp/mlwarden-fmtdiff]

Cases come from tests/fuzz/formatgen.py (npy/npz descr shapes, tampered joblib dumps,
old joblib ZF files, other formats' magic in front of a pickle, protocol 0 text that breaks
after its call); each is loaded by the real loaders in the sandboxed oracle
(tests/soundness/oracle.py) and scanned. A file some loader ran a payload from while the
scanner said clean or suspicious is a divergence: saved under <out>/divergences/<n>/ with
its description. The summary gives files generated, payloads that ran, divergences, and
the minute of the last new divergence signature.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    from fuzz.formatgen import generate
    from soundness.oracle import Oracle, compare

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--campaign", default="formats")
    ap.add_argument("--out", type=Path, default=Path("/tmp/mlwarden-fmtdiff"))
    args = ap.parse_args(argv)
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    done = ran = 0
    found: dict[str, float] = {}
    with Oracle(scratch=args.out / "oracle", timeout=20) as oracle:
        i = args.start
        while time.monotonic() < deadline:
            case = generate(random.Random(f"{args.campaign}-{i}"))
            p = work / case.filename
            p.write_bytes(case.data)
            c = compare(p, oracle=oracle)
            done += 1
            ran += bool(c.malicious_loaders)
            if c.divergence is not None:
                sig = " ".join(sorted({t.split(":")[0] + ":" + t.split(":")[1]
                                       for t in case.tags if ":" in t}))
                sig = f"{c.scanner.verdict} {sig}"
                d = args.out / "divergences" / str(i)
                d.mkdir(parents=True, exist_ok=True)
                (d / case.filename).write_bytes(case.data)
                (d / "describe.txt").write_text(c.divergence.describe())
                if sig not in found:
                    found[sig] = (time.monotonic() - started) / 60
                    print(f"new divergence {sig!r} at case {i}", flush=True)
            i += 1
    minutes = (time.monotonic() - started) / 60
    last = max(found.values(), default=None)
    print(json.dumps({"files": done, "payloads_ran": ran, "divergence_signatures": len(found),
                      "minutes": round(minutes, 1),
                      "last_new_divergence_minute": None if last is None else round(last, 1),
                      "signatures": sorted(found)}, indent=1))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
