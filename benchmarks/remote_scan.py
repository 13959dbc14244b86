"""Remote scan of a sharded checkpoint served by `mlwarden serve`, against a local scan of
the same files in the same run.

    python benchmarks/remote_scan.py [--shards 8] [--mib 512] [--format safetensors|torch]
                                     [--rounds 3] [--baseline OTHER_CHECKOUT]

Writes SHARDS shards of MIB MiB each (plus the index and a config), imports them into a
store, serves it with `mlwarden serve` in its own process, then alternates: `mlwarden scan
DIR` and `mlwarden scan hf://bench/sharded` (HF_ENDPOINT pointing at the registry), each a
fresh process, and the same two scans in-process. Prints the bytes the remote scan read as
a fraction of the repository's size (target < 0.1%) and the remote/local wall-time ratio
(target <= 2x on loopback). CPU seconds (user + sys) are printed beside wall times: on a
shared machine they move far less with the load. ``--baseline DIR`` also times the remote
scan with another checkout's ``src/`` (e.g. ``git worktree add DIR main``), interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20
REPO = "bench/sharded"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_checkpoint(path: Path, shards: int, mib: int, kind: str) -> None:
    path.mkdir(parents=True)
    weight_map = {}
    for i in range(shards):
        n = mib * MiB
        if kind == "torch":
            import torch

            name = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
            # 64 tensors per shard, like a real checkpoint; zeros compress to nothing on
            # disk only with sparse files, so this writes the bytes.
            per = n // 64
            torch.save({f"layer{i}.{j}.weight": torch.zeros(per, dtype=torch.uint8)
                        for j in range(64)}, path / name)
            for j in range(64):
                weight_map[f"layer{i}.{j}.weight"] = name
        else:
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            per = n // 64
            header = {f"layer{i}.{j}.weight": {"dtype": "U8", "shape": [per],
                                               "data_offsets": [j * per, (j + 1) * per]}
                      for j in range(64)}
            raw = json.dumps(header).encode()
            raw += b" " * (-len(raw) % 8)
            with open(path / name, "wb") as fh:
                fh.write(len(raw).to_bytes(8, "little") + raw)
                fh.truncate(8 + len(raw) + 64 * per)  # sparse tensor bytes
            for j in range(64):
                weight_map[f"layer{i}.{j}.weight"] = name
    index = "pytorch_model.bin.index.json" if kind == "torch" else "model.safetensors.index.json"
    (path / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))


def env_for(tmp: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MLWARDEN_"))}
    env.update({"HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_ENDPOINT": url,
                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, CPU seconds of the process, its JSON output)."""
    before = os.times()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after = os.times()
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{cmd[:5]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, cpu, json.loads(proc.stdout)


IN_PROCESS = """
import json, sys, time
from mlwarden.scan.engine import ScanOptions, scan_paths
arg = sys.argv[1]
scan_paths([arg], ScanOptions())  # warm imports and connections
best = None
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    rep = scan_paths([arg], ScanOptions())
    e = time.perf_counter() - t
    best = e if best is None else min(best, e)
print(json.dumps({"seconds": best, "meta": rep.meta, "verdict": rep.verdict.value}))
"""


def compile_sources(src: Path) -> None:
    """Installed packages come byte-compiled; an editable checkout does not, and this
    machine sets PYTHONDONTWRITEBYTECODE. Compile it so no run pays for compilation (the
    remote path imports more of mlwarden than the local one, so it would pay more)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--format", choices=["safetensors", "torch"], default="safetensors")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="Another checkout: its remote scan is timed too (before/after).")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-bench-remote-"))
    server = None
    try:
        from mlwarden.registry.importer import import_directory
        from mlwarden.store import Store

        ckpt = root / "checkpoint"
        make_checkpoint(ckpt, args.shards, args.mib, args.format)
        up = Store.open(root / "upstream")
        assert import_directory(up, ckpt, REPO, approve=True).commit is not None
        up.close()
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--store",
                                   str(root / "upstream"), "--port", str(port),
                                   "--allow-anonymous", "--log-level", "warning"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("registry did not start") from None
                time.sleep(0.1)
        env = env_for(root, url)
        total = sum(p.stat().st_size for p in ckpt.iterdir())
        compile_sources(Path(__file__).resolve().parents[1] / "src")
        runs = [("local", str(ckpt), env), ("remote", f"hf://{REPO}", env)]
        if args.baseline is not None:
            base_env = {**env, "PYTHONPATH": str(args.baseline.resolve() / "src")}
            compile_sources(args.baseline.resolve() / "src")
            runs.append(("baseline remote", f"hf://{REPO}", base_env))
        cli: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in runs}
        meta: dict[str, object] = {}
        for _ in range(args.rounds):
            for label, target, run_env in runs:
                t, cpu, doc = timed([sys.executable, "-m", "mlwarden", "scan", target,
                                     "--format", "json"], run_env)
                cli[label].append((t, cpu))
                if label == "remote":
                    meta = doc["meta"]["remote"][0]
        inproc = {}
        for label, target in (("local", str(ckpt)), ("remote", f"hf://{REPO}")):
            proc = subprocess.run([sys.executable, "-c", IN_PROCESS, target, str(args.rounds)],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            inproc[label] = json.loads(proc.stdout)["seconds"]
        read = int(meta["bytes_read"])  # type: ignore[call-overload]
        print(f"checkpoint: {args.shards} x {args.mib} MiB {args.format} shards, "
              f"{total / MiB:.0f} MiB in all")
        print(f"remote scan read {read} bytes in {meta['requests']} requests = "
              f"{read / total:.5%} of the repository (target < 0.1%)")
        for k, v in cli.items():
            print(f"CLI {k:15} scan: best {min(w for w, _ in v):.3f}s wall, "
                  f"{min(c for _, c in v):.3f}s CPU "
                  f"(all wall: {', '.join(f'{w:.3f}' for w, _ in v)})")
        print(f"in-process: local {inproc['local']:.4f}s, remote {inproc['remote']:.4f}s")

        def ratio(k: str, i: int) -> float:
            return min(x[i] for x in cli[k]) / min(x[i] for x in cli["local"])

        print(f"ratio remote/local: CLI wall {ratio('remote', 0):.2f}x, CLI CPU "
              f"{ratio('remote', 1):.2f}x, in-process {inproc['remote'] / inproc['local']:.2f}x"
              " (target <= 2x)")
        if args.baseline is not None:
            print(f"baseline remote/local: CLI wall {ratio('baseline remote', 0):.2f}x, "
                  f"CLI CPU {ratio('baseline remote', 1):.2f}x")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
