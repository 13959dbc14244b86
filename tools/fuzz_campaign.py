#!/usr/bin/env python
"""Cross-format fuzzing campaign against every scanner reader (run locally, not in CI).

    python tools/fuzz_campaign.py --minutes 10
    python tools/fuzz_campaign.py --minutes 2 --only gguf,safetensors --workers 2
    python tools/fuzz_campaign.py --minimise /tmp/mlwarden-fuzz/run/failures/<id>/input
    nice python tools/fuzz_campaign.py --differential --minutes 30 --workers 2

Seeds are valid files written by the real libraries (tests/fuzz/seeds.py); mutants are
stacked byte-level and length-field mutations, splices and container wrappings
(tests/fuzz/mutate.py). Each mutant is written to disk and scanned with ``scan_paths`` in a
worker process under a per-input time budget and memory bound (tests/fuzz/harness.py).

With ``--differential`` the inputs are generated pickle-bearing files that carry a payload
(tests/fuzz/picklegen.py); each is loaded by the real loaders in the sandboxed oracle
(tests/soundness/oracle.py) and scanned, and a file some loader runs a payload from while
the scanner says clean or suspicious is a failure (tests/fuzz/differential.py). The summary
gives the files generated, how many ran a payload, the divergences and when the last new
one was found.

The supervisor (this process) restarts a worker that dies (segfault in a C parser) or stops
answering (a hang in C code the interval timer cannot interrupt) and records the input that
was running. Failures are deduplicated by signature into ``<out>/failures/<id>/``, each with
its input (and siblings), the traceback, and the command that replays it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

DEFAULT_OUT = Path("/tmp/mlwarden-fuzz")
HARD_TIMEOUT = 30.0  # seconds without a heartbeat before the supervisor kills a worker
NEST_RATE = 0.12


# ----------------------------------------------------------------- worker


def _diff_worker(args: argparse.Namespace) -> None:
    """Differential mode: generated cases through the oracle and the scanner."""
    from fuzz.differential import case_for, run_case
    from soundness.oracle import Oracle

    # No address-space bound here: the oracle server (a child) inherits it and preloads
    # torch; each of its forked loads sets its own limits.
    work = Path(args.work)
    failures = Path(args.out) / "failures"
    deadline = time.monotonic() + args.seconds
    i = args.start
    with Oracle(timeout=args.oracle_timeout, scratch=work / "oracle") as oracle:
        while time.monotonic() < deadline:
            case = case_for(i, args.rng)
            meta = {"index": i, "seed": "picklegen", "mutation": case.name,
                    "file": case.filename, "rng": args.rng}
            (work / "current.json").write_text(json.dumps(meta))
            case_dir = work / "current"
            shutil.rmtree(case_dir, ignore_errors=True)
            _write_case(case_dir, case.filename, case.data, {})
            t0 = time.perf_counter()
            out = run_case(case, i, oracle, work / "cases")
            new = False
            if out.diverged:
                div = out.comparison.divergence
                assert div is not None
                new = _save_failure(failures, out.signature, case_dir, meta, div.describe(),
                                    time.perf_counter() - t0, 0)
            print(json.dumps({"i": i, "kind": "divergence" if out.diverged else None,
                              "new": new, "executed": out.executed,
                              "t": round(time.perf_counter() - t0, 3), "peak": 0}),
                  flush=True)
            i += 1
    print(json.dumps({"done": i}), flush=True)



def _worker(args: argparse.Namespace) -> None:
    from fuzz import harness, mutate
    from fuzz.seeds import load_seeds

    _limit_address_space(args.address_space_gib)
    _sandbox_within_budget(args.budget)
    seeds = load_seeds(Path(args.seeds))
    if args.only:
        seeds = {k: v for k, v in seeds.items() if k in args.only.split(",")}
    names = sorted(seeds)
    others = [s.data for s in seeds.values()]
    work = Path(args.work)
    failures = Path(args.out) / "failures"
    deadline = time.monotonic() + args.seconds
    i = args.start
    while time.monotonic() < deadline:
        rng = random.Random(f"{args.rng}-{i}")
        seed = seeds[names[i % len(names)]]
        data, desc = mutate.mutate(seed.data, rng, others)
        filename = seed.filename
        if rng.random() < NEST_RATE:
            data, filename = mutate.nest(data, seed.filename, rng)
            desc += "+nest"
        case = work / "current"
        shutil.rmtree(case, ignore_errors=True)
        siblings = seed.siblings if filename == seed.filename else {}
        path = _write_case(case, filename, data, siblings)
        meta = {"index": i, "seed": seed.name, "mutation": desc, "file": filename,
                "rng": args.rng}
        (work / "current.json").write_text(json.dumps(meta))
        out = harness.run_path(path, budget=args.budget, memory=args.memory << 20,
                               trace_memory=not args.no_tracemalloc)
        if out.kind is not None:
            sig = f"{out.signature} [{seed.name}]" if out.kind != "internal-error" \
                else out.signature
            _save_failure(failures, sig, case, meta, out.detail, out.seconds, out.peak)
        print(json.dumps({"i": i, "kind": out.kind, "t": round(out.seconds, 3),
                          "peak": out.peak}), flush=True)
        i += 1
    print(json.dumps({"done": i}), flush=True)


def _sandbox_within_budget(budget: float) -> None:
    """libhdf5 hangs are contained by the reader's sandbox timeout; make it fire within
    the per-input budget so a contained hang reads as a finding, not as a time-out."""
    from mlwarden.scan.readers import hdf5_file

    hdf5_file.CHILD_TIMEOUT = min(hdf5_file.CHILD_TIMEOUT, budget * 0.6)


def _write_case(case: Path, filename: str, data: bytes, siblings: dict[str, bytes]) -> Path:
    case.mkdir(parents=True, exist_ok=True)
    for name, blob in siblings.items():
        (case / name).write_bytes(blob)
    p = case / filename
    p.write_bytes(data)
    return p


def _limit_address_space(gib: float) -> None:
    """A backstop: an allocation beyond the bound raises MemoryError instead of swapping."""
    if gib <= 0:
        return
    with open("/proc/self/statm") as fh:
        vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vsz + int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _save_failure(failures: Path, sig: str, case: Path, meta: dict[str, object],
                  detail: str, seconds: float, peak: int) -> bool:
    """Keep the first input per signature; count the rest. True when the signature is new."""
    fid = hashlib.sha256(sig.encode()).hexdigest()[:12]
    d = failures / fid
    count_file = d / "count"
    if d.exists():
        n = int(count_file.read_text()) if count_file.exists() else 1
        count_file.write_text(str(n + 1))
        return False
    d.mkdir(parents=True)
    shutil.copytree(case, d / "input")
    (d / "meta.json").write_text(json.dumps({**meta, "signature": sig, "seconds": seconds,
                                             "peak": peak}, indent=1))
    (d / "detail.txt").write_text(detail)
    count_file.write_text("1")
    return True


# ----------------------------------------------------------------- supervisor


def _supervise(args: argparse.Namespace) -> int:
    out = Path(args.out)
    seeds_dir = Path(args.seeds)
    if not args.differential and not (seeds_dir / "index.json").exists():
        print(f"building seeds in {seeds_dir} ...", flush=True)
        from fuzz.seeds import build_seeds, save_seeds

        save_seeds(build_seeds(out / "seed-build"), seeds_dir)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    total_seconds = args.minutes * 60
    started = time.monotonic()
    stride = 10_000_000
    procs = []
    for w in range(args.workers):
        procs.append(_Worker(args, w, start=args.start + w * stride))
    done = 0
    finished: list[_Worker] = []
    while procs:
        for wk in list(procs):
            line = wk.poll(HARD_TIMEOUT if not args.hard_timeout else args.hard_timeout)
            if line is None:
                continue
            if line == "EXIT":
                remaining = total_seconds - (time.monotonic() - started)
                finished.append(wk)
                if wk.finished or remaining <= 1:
                    done += wk.count
                    procs.remove(wk)
                else:  # crash or hang: record, restart after the bad input
                    wk.record_crash(out / "failures")
                    done += wk.count
                    procs.remove(wk)
                    procs.append(_Worker(args, wk.number, start=wk.last + 2,
                                         seconds=remaining))
    elapsed = time.monotonic() - started
    failures = sorted((out / "failures").glob("*/meta.json"))
    print(f"\n{done} inputs in {elapsed / 60:.1f} min; {len(failures)} distinct failures")
    if args.differential:
        ran = sum(wk.executed for wk in finished)
        divs = sum(wk.divergences for wk in finished)
        new_times = sorted(t for wk in finished for t in wk.new_at)
        last = f"{(elapsed - (new_times[-1] - started)) / 60:.1f} min before the end" \
            if new_times else "none"
        summary = {"files": done, "executed_payloads": ran, "divergences": divs,
                   "distinct": len(failures), "minutes": round(elapsed / 60, 1),
                   "last_new_divergence": last,
                   "new_divergence_minutes": [round((t - started) / 60, 1)
                                              for t in new_times]}
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"differential: {ran} of {done} files ran a payload under a real loader; "
              f"{divs} divergences ({len(failures)} distinct); last new divergence: {last}")
    for m in failures:
        meta = json.loads(m.read_text())
        n = (m.parent / "count").read_text()
        print(f"  {m.parent.name}  x{n}  {meta['signature']}  "
              f"(seed {meta['seed']}, {meta['mutation']})")
    return 1 if failures else 0


class _Worker:
    def __init__(self, args: argparse.Namespace, number: int, start: int,
                 seconds: float | None = None) -> None:
        self.number = number
        self.work = Path(args.out) / f"worker{number}"
        self.work.mkdir(parents=True, exist_ok=True)
        seconds = args.minutes * 60 if seconds is None else seconds
        cmd = [sys.executable, __file__, "--worker", "--start", str(start),
               "--oracle-timeout", str(args.oracle_timeout),
               *(["--differential"] if args.differential else []),
               "--seconds", str(seconds), "--work", str(self.work),
               "--seeds", args.seeds, "--out", args.out, "--rng", args.rng,
               "--budget", str(args.budget), "--memory", str(args.memory),
               "--address-space-gib", str(args.address_space_gib)]
        if args.only:
            cmd += ["--only", args.only]
        if args.no_tracemalloc:
            cmd.append("--no-tracemalloc")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]
        self.last = start - 1
        self.count = 0
        self.finished = False
        self.beat = time.monotonic()
        self.buf = ""
        self.hung = False
        self.executed = 0
        self.divergences = 0
        self.new_at: list[float] = []

    def poll(self, hard_timeout: float) -> str | None:
        """A status line, "EXIT" when the worker is gone, or None (nothing new yet)."""
        assert self.proc.stdout is not None
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            self.buf += chunk
            self.beat = time.monotonic()
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "done" in msg:
                self.finished = True
            else:
                self.last, self.count = msg["i"], self.count + 1
                self.executed += bool(msg.get("executed"))
                if msg.get("kind") == "divergence":
                    self.divergences += 1
                    if msg.get("new"):
                        self.new_at.append(time.monotonic())
                        stamp = time.strftime("%H:%M:%S", time.gmtime())
                        print(f"{stamp}Z worker {self.number}: new divergence at input "
                              f"{msg['i']}", flush=True)
                if self.count % 500 == 0:
                    stamp = time.strftime("%H:%M:%S", time.gmtime())
                    print(f"{stamp}Z worker {self.number}: {self.count} inputs", flush=True)
        if self.proc.poll() is not None:
            return "EXIT"
        if time.monotonic() - self.beat > hard_timeout:
            self.hung = True
            self.proc.kill()
            self.proc.wait()
            return "EXIT"
        time.sleep(0.05)
        return None

    def record_crash(self, failures: Path) -> None:
        meta_file = self.work / "current.json"
        if not meta_file.exists():
            return
        meta = json.loads(meta_file.read_text())
        rc = self.proc.returncode
        kind = "hang" if self.hung else f"crash rc={rc}"
        sig = f"{kind} [{meta['seed']}]"
        _save_failure(failures, sig, self.work / "current", meta,
                      f"worker {kind} on input {meta['index']}", 0.0, 0)
        print(f"worker {self.number}: {sig} on input {meta['index']}", flush=True)


# ----------------------------------------------------------------- replay / minimise


def _replay(path: Path, args: argparse.Namespace) -> int:
    from fuzz import harness

    _sandbox_within_budget(args.budget)
    out = harness.run_path(path, budget=args.budget, memory=args.memory << 20)
    print(json.dumps({"kind": out.kind, "seconds": out.seconds, "peak": out.peak,
                      "verdict": out.verdict, "signature": out.signature}))
    if out.detail:
        print(out.detail)
    return 0 if out.kind is None else 1


def _minimise(path: Path, args: argparse.Namespace) -> int:
    """Delta-debug a failing input down to a small one with the same failure signature."""
    from fuzz import harness

    _sandbox_within_budget(args.budget)
    if path.is_dir():
        path = next(p for p in path.iterdir() if p.is_file() and p.name != "weights.bin")
    first = harness.run_path(path, budget=args.budget, memory=args.memory << 20)
    if first.kind is None:
        print("input does not fail")
        return 1
    target = first.signature
    data = path.read_bytes()
    work = Path(args.out) / "minimise"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for sib in path.parent.iterdir():
        if sib != path and sib.is_file():
            shutil.copy(sib, work / sib.name)
    trial_path = work / path.name

    def fails(blob: bytes) -> bool:
        trial_path.write_bytes(blob)
        out = harness.run_path(trial_path, budget=args.budget, memory=args.memory << 20)
        return out.signature == target

    deadline = time.monotonic() + args.seconds
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, changed = 0, False
        while i < len(data) and time.monotonic() < deadline:
            cand = data[:i] + data[i + chunk:]
            if cand and fails(cand):
                data, changed = cand, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    trial_path.write_bytes(data)
    print(f"{target}\nminimised to {len(data)} bytes: {trial_path}")
    print(repr(data[:400]))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated seed names")
    ap.add_argument("--rng", default="mlwarden", help="campaign seed (reproducible)")
    ap.add_argument("--start", type=int, default=0, help="first input index")
    ap.add_argument("--out", default=str(DEFAULT_OUT / "run"))
    ap.add_argument("--seeds", default=str(DEFAULT_OUT / "seeds"))
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per input")
    ap.add_argument("--memory", type=int, default=256, help="MiB of Python allocations")
    ap.add_argument("--hard-timeout", type=float, default=0.0)
    ap.add_argument("--address-space-gib", type=float, default=2.0)
    ap.add_argument("--no-tracemalloc", action="store_true")
    ap.add_argument("--differential", action="store_true",
                    help="generated payload files: real loaders (oracle) vs the scanner")
    ap.add_argument("--oracle-timeout", type=float, default=10.0,
                    help="seconds per real-loader run (differential mode)")
    ap.add_argument("--replay", type=Path)
    ap.add_argument("--minimise", type=Path)
    ap.add_argument("--seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.worker:
        if args.differential:
            _diff_worker(args)
        else:
            _worker(args)
        return 0
    if args.differential and not args.hard_timeout:
        args.hard_timeout = 7 * args.oracle_timeout + 60  # six loaders and the scan
    if args.replay:
        return _replay(args.replay, args)
    if args.minimise:
        return _minimise(args.minimise, args)
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())
