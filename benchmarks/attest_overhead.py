"""What `mlwarden attest` adds to the wall time of the toy training run.

    python benchmarks/attest_overhead.py [--rounds 5] [--steps 20] [--keep DIR]

The toy run of the test suite (a BERT masked-LM from a local Hugging Face cache, a YAML
config, a generated JSONL dataset, transformers' Trainer on CPU, save_pretrained) in a git
workspace, timed alternately (a) as `python train.py out` and (b) as `mlwarden attest -o
prov.json --key KEY -- python train.py out` (signed record: capture, hashing of inputs and
outputs, environment listing, statement, validation, DSSE signature). Each process starts
cold, so interpreter and import time count on both sides. Prints every round, the best and
the median of each, and the ratios; the target is attest <= 1.05x the plain run.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from corpus.pki import make_pki  # noqa: E402
from provenance.support import (  # noqa: E402
    git,
    github_env,
    make_base_model,
    make_workspace,
    run_env,
)


def timed(cmd: list[str], cwd: Path, env: dict[str, str],
          inside: list[dict[str, float]] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree); attest's own account of its
    time before and after the command goes to ``inside``."""
    shutil.rmtree(cwd / "out", ignore_errors=True)
    (cwd / "prov.json").unlink(missing_ok=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed:\n{done.stderr[-3000:]}")
    if inside is not None:
        import json

        inside.append(json.loads(done.stdout[done.stdout.rindex("{\n  \"output\""):])["seconds"])
    return elapsed, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="mlwarden-attest-bench-"))
    try:
        hf = tmp / "hf"
        make_base_model(hf)
        ws = tmp / "ws"
        if not ws.exists():
            make_workspace(ws, steps=args.steps)
        keys = make_pki(tmp / "pki")
        env = run_env(hf, **github_env(git(ws, "rev-parse", "HEAD").strip()))
        mlw = shutil.which("mlwarden", path=str(Path(sys.executable).parent)) or "mlwarden"
        plain = [sys.executable, "train.py", "out"]
        attest = [mlw, "attest", "-o", "prov.json", "--key", str(keys.key), "--outputs",
                  "out", "--format", "json", "--", *plain]
        inside: list[dict[str, float]] = []
        # An installed mlwarden has its bytecode compiled by pip; an editable checkout run
        # with PYTHONDONTWRITEBYTECODE=1 would recompile its modules in every process.
        import compileall

        import mlwarden

        compileall.compile_dir(Path(mlwarden.__file__).parent, quiet=1)
        timed(plain, ws, env)  # warm the page cache for both sides
        a: list[tuple[float, float]] = []
        b: list[tuple[float, float]] = []
        for i in range(args.rounds):
            for label, cmd, out in (("plain ", plain, a), ("attest", attest, b)) if i % 2 == 0 \
                    else (("attest", attest, b), ("plain ", plain, a)):
                t, cpu = timed(cmd, ws, env, inside if cmd is attest else None)
                out.append((t, cpu))
                print(f"round {i + 1}: {label} wall {t:6.2f} s  cpu {cpu:6.2f} s", flush=True)
        for what, k in (("wall time", 0), ("CPU time (steadier on a shared machine)", 1)):
            xa, xb = [x[k] for x in a], [x[k] for x in b]
            best_a, best_b = min(xa), min(xb)
            med_a, med_b = statistics.median(xa), statistics.median(xb)
            print(f"\n{what}:")
            print(f"  plain training : best {best_a:.2f} s, median {med_a:.2f} s")
            print(f"  under attest   : best {best_b:.2f} s, median {med_b:.2f} s")
            print(f"  ratio attest/plain: best {best_b / best_a:.3f}x, median "
                  f"{med_b / med_a:.3f}x (target <= 1.05x); added {med_b - med_a:+.2f} s "
                  "per run (median)")
        over = [x["before"] + x["after"] for x in inside]
        cmd_t = [x["command"] for x in inside]
        print("\nattest's own time outside the command (its critical path; the command runs "
              "unchanged):")
        print(f"  before {statistics.median(x['before'] for x in inside):.3f} s + after "
              f"{statistics.median(x['after'] for x in inside):.3f} s = "
              f"{statistics.median(over):.3f} s (median), i.e. "
              f"{statistics.median(o / c for o, c in zip(over, cmd_t)):.3f}x of the command")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
