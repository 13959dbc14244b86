"""Scanner speed and memory against picklescan and ModelAudit, measured in the same run.

    python benchmarks/scan_speed.py            # full: 8 x 512 MiB checkpoint, 1,000 pickles
                                               # (mixed, and dicts/lists/OrderedDicts only)
    python benchmarks/scan_speed.py --quick    # 8 x 32 MiB, 200 pickles (smoke run)

Needs the `test` extra (torch==2.13.0). The peers are installed into their own virtual
environment under the work directory on first use (PyPI reachable). Whole-process wall
time is measured (median of --repeat runs, warm page cache) together with each process's
peak RSS (from wait4). Targets from issue 2: mlwarden <= 1.5x picklescan on the sharded
checkpoint and <= 1.0x on the 1,000 small pickles; peak memory independent of tensor
bytes. Issue 3: GGUF, safetensors and ONNX scan time independent of tensor bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def ensure_env(work: Path, peers: tuple[str, ...] = ("picklescan", "modelaudit")) -> Path:
    """One virtual environment holding mlwarden and the peers, so that every tool starts
    under the same interpreter and site-packages."""
    venv = work / "bench-env"
    bin_ = venv / "bin"
    if not all((bin_ / t).exists() for t in (*peers, "mlwarden")):
        print(f"installing mlwarden, {', '.join(peers)} into", venv, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(bin_ / "pip"), "install", "-q", "-e", str(ROOT), *peers],
                       check=True)
    # Installed packages come byte-compiled; the editable source does not. Compile it so
    # that no tool pays for compilation (this machine sets PYTHONDONTWRITEBYTECODE).
    subprocess.run([str(bin_ / "python"), "-m", "compileall", "-q", str(ROOT / "src")],
                   check=True)
    return bin_


def version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True)
    return (out.stdout or out.stderr).strip().splitlines()[-1] if (out.stdout or out.stderr) \
        else "?"


def _pip_version(bin_: Path, package: str) -> str:
    """The Version: field of ``pip show`` (its last line is Required-by:)."""
    out = subprocess.run([str(bin_ / "pip"), "show", package], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


# ------------------------------------------------------------------------ corpora


def build_sharded(path: Path, shards: int, shard_mib: int) -> None:
    import torch

    marker = path / ".complete"
    if marker.exists() and marker.read_text() == f"{shards}x{shard_mib}":
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    per_tensor = 64 * MiB if shard_mib >= 64 else shard_mib * MiB // 4
    weight_map = {}
    for s in range(shards):
        sd = {}
        n = max(1, shard_mib * MiB // per_tensor)
        for t in range(n):
            name = f"layers.{s}.block{t}.weight"
            sd[name] = torch.zeros(per_tensor // 4, dtype=torch.float32)
        fname = f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
        torch.save(sd, path / fname)
        weight_map.update({k: fname for k in sd})
        print(f"  wrote {fname}", flush=True)
    (path / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))
    marker.write_text(f"{shards}x{shard_mib}")


def build_small(path: Path, count: int) -> None:
    marker = path / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    import numpy as np
    import torch

    rng = random.Random(1234)
    for i in range(count):
        kind = i % 4
        if kind == 0:
            obj: object = {f"k{j}": [rng.random() for _ in range(8)] for j in range(16)}
            (path / f"data_{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=i % 6))
        elif kind == 1:
            obj = {"w": np.arange(64, dtype=np.float32).reshape(8, 8), "step": i}
            (path / f"np_{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=2 + i % 4))
        elif kind == 2:
            torch.save({"w": torch.ones(4, 4), "b": torch.zeros(4)}, path / f"sd_{i:04d}.pt")
        else:
            obj = [("layer", j, {"units": 32, "act": "relu"}) for j in range(20)]
            (path / f"cfg_{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=i % 6))
    marker.write_text(str(count))


def build_plain(path: Path, count: int) -> None:
    """Issue 11's new-user check: small protocol 1-5 pickles of dicts, lists and
    OrderedDicts only (no numpy, no torch)."""
    marker = path / ".complete"
    if marker.exists() and marker.read_text() == str(count):
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    from collections import OrderedDict

    rng = random.Random(4321)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            obj: object = {f"k{j}": rng.random() for j in range(24)}
        elif kind == 1:
            obj = [[rng.randrange(1000), f"s{j}", rng.random()] for j in range(16)]
        else:
            obj = OrderedDict((f"layer{j}", {"units": 32, "w": [0.5] * 4}) for j in range(12))
        (path / f"obj_{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=1 + i % 5))
    marker.write_text(str(count))


def build_formats(path: Path, mib: int) -> None:
    """safetensors, GGUF and ONNX files of the same structure with small and large tensors."""
    marker = path / ".complete"
    if marker.exists() and marker.read_text() == str(mib):
        return
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import save_file

    for label, n in (("small", 1024), ("large", mib * MiB // 4)):
        d = path / label
        d.mkdir()
        arr = np.zeros(n, dtype=np.float32)
        save_file({"w": arr, "b": np.zeros(8, dtype=np.float32)}, str(d / "model.safetensors"))
        import gguf

        w = gguf.GGUFWriter(str(d / "model.gguf"), "llama")
        w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
        w.add_tensor("w", arr)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        init = numpy_helper.from_array(arr, "w")
        graph = helper.make_graph(
            [helper.make_node("Identity", ["w"], ["y"])], "g", [],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [init])
        model = helper.make_model(graph)
        onnx.save_model(model, str(d / "model.onnx"), save_as_external_data=n > 1024,
                        location="model.onnx.data", size_threshold=1024)
    marker.write_text(str(mib))


# ------------------------------------------------------------------------ measuring


def measure(cmd: list[str], repeat: int, timeout: float, env: dict[str, str] | None = None
            ) -> tuple[float | None, float | None, int]:
    """Median wall seconds, max peak RSS (MiB) and last exit status of ``cmd``."""
    times: list[float] = []
    peak = 0.0
    code = 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                proc.wait()
                return None, None, -1
            time.sleep(0.002)
        times.append(time.perf_counter() - start)
        peak = max(peak, usage.ru_maxrss / 1024)
        code = os.waitstatus_to_exitcode(status)
    return statistics.median(times), peak, code


def fmt(v: float | None, unit: str = "s") -> str:
    return "timeout" if v is None else f"{v:.2f}{unit}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-work")
    ap.add_argument("--quick", action="store_true", help="small corpus for a smoke run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modelaudit-timeout", type=float, default=900.0)
    ap.add_argument("--modelaudit-sample", type=int, default=20,
                    help="small pickles given to ModelAudit (it takes seconds per file)")
    ap.add_argument("--no-modelaudit", action="store_true",
                    help="measure mlwarden and picklescan only (ModelAudit takes minutes)")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    shard_mib, count, fmt_mib = (32, 200, 64) if args.quick else (512, 1000, 1024)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sharded = work / f"sharded-8x{shard_mib}"
    tiny = work / "sharded-8x1"
    small = work / f"small-{count}"
    plain = work / f"plain-{count}"
    sample = work / f"small-sample-{args.modelaudit_sample}"
    formats = work / f"formats-{fmt_mib}"
    if args.build_only:
        print("building corpora in", work, flush=True)
        build_sharded(sharded, 8, shard_mib)
        build_sharded(tiny, 8, 1)
        build_small(small, count)
        build_plain(plain, count)
        if not sample.exists():
            sample.mkdir()
            for p in sorted(small.glob("*"))[: args.modelaudit_sample]:
                if p.name != ".complete":
                    shutil.copy(p, sample / p.name)
        build_formats(formats, fmt_mib)
        return 0
    # Corpora are built by a child process so that this parent never loads torch: a
    # child's peak RSS (wait4) starts from the parent's size at fork.
    subprocess.run([sys.executable, __file__, "--build-only", "--work", str(work),
                    "--modelaudit-sample", str(args.modelaudit_sample),
                    *(["--quick"] if args.quick else [])], check=True)
    peers = ensure_env(work, ("picklescan",) if args.no_modelaudit
                       else ("picklescan", "modelaudit"))

    mlw = [str(peers / "mlwarden"), "scan"]
    ps = [str(peers / "picklescan"), "-p"]
    ma_env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}
    ma = [str(peers / "modelaudit"), "scan", "--no-cache", "-q", "-f", "json"]
    print(f"{version([str(peers / 'mlwarden'), '--version'])}; "
          f"picklescan {_pip_version(peers, 'picklescan')}; modelaudit "
          f"{'-' if args.no_modelaudit else version([str(peers / 'modelaudit'), '--version'])}",
          flush=True)

    rows: list[tuple[str, str, float | None, float | None, int]] = []

    def run(label: str, tool: str, cmd: list[str], timeout: float = 1800,
            env: dict[str, str] | None = None, repeat: int | None = None) -> float | None:
        t, rss, code = measure(cmd, repeat or args.repeat, timeout, env)
        rows.append((label, tool, t, rss, code))
        print(f"  {label:34} {tool:11} {fmt(t):>9} {fmt(rss, ' MiB'):>11}  exit {code}",
              flush=True)
        return t

    print("\nmeasuring (median wall time, peak RSS)", flush=True)
    lbl = f"sharded checkpoint 8x{shard_mib} MiB"
    m1 = run(lbl, "mlwarden", [*mlw, str(sharded)])
    p1 = run(lbl, "picklescan", [*ps, str(sharded)])
    a1 = None if args.no_modelaudit else run(lbl, "modelaudit", [*ma, str(sharded)],
                                             args.modelaudit_timeout, ma_env, 1)
    m1t = run("sharded checkpoint 8x1 MiB", "mlwarden", [*mlw, str(tiny)])
    lbl = f"{count} small pickles"
    m2 = run(lbl, "mlwarden", [*mlw, str(small)])
    p2 = run(lbl, "picklescan", [*ps, str(small)])
    lbl_p = f"{count} dict/list/OrderedDict pickles"
    m4 = run(lbl_p, "mlwarden", [*mlw, str(plain)])
    p4 = run(lbl_p, "picklescan", [*ps, str(plain)])
    lbl_s = f"{args.modelaudit_sample} small pickles"
    m3 = run(lbl_s, "mlwarden", [*mlw, str(sample)])
    p3 = run(lbl_s, "picklescan", [*ps, str(sample)])
    a3 = None if args.no_modelaudit else run(lbl_s, "modelaudit", [*ma, str(sample)],
                                             args.modelaudit_timeout, ma_env, 1)
    fm: dict[str, dict[str, float | None]] = {}
    for kind in ("safetensors", "gguf", "onnx"):
        for size in ("small", "large"):
            f = formats / size / f"model.{kind}"
            fm.setdefault(kind, {})[size] = run(f"{kind} {size}", "mlwarden", [*mlw, str(f)])

    peak = {(r[0], r[1]): r[3] for r in rows}
    print("\nresults")
    print(f"  sharded checkpoint: mlwarden/picklescan {ratio(m1, p1)} (target <= 1.50x); "
          f"mlwarden/modelaudit {ratio(m1, a1)}")
    print(f"  {count} small pickles: mlwarden/picklescan {ratio(m2, p2)} (target <= 1.00x)")
    print(f"  {count} dict/list/OrderedDict pickles (protocols 1-5, default table): "
          f"mlwarden/picklescan {ratio(m4, p4)} (target <= 1.00x)")
    print(f"  {args.modelaudit_sample} small pickles: mlwarden/picklescan {ratio(m3, p3)}; "
          f"mlwarden/modelaudit {ratio(m3, a3)}")
    big = peak[(f"sharded checkpoint 8x{shard_mib} MiB", "mlwarden")]
    little = peak[("sharded checkpoint 8x1 MiB", "mlwarden")]
    print(f"  peak RSS, 8x{shard_mib} MiB vs 8x1 MiB checkpoint: {fmt(big, ' MiB')} vs "
          f"{fmt(little, ' MiB')} ({ratio(big, little)}); time {ratio(m1, m1t)}")
    for kind, v in fm.items():
        print(f"  {kind}: {fmt_mib} MiB tensor vs 4 KiB tensor scan time "
              f"{ratio(v['large'], v['small'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
