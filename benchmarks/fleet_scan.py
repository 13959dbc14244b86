"""`mlwarden fleet scan` over generated repositories on a loopback registry.

    python benchmarks/fleet_scan.py [--repos 1000] [--workers 1,2] [--ray]
                                    [--baseline OTHER_CHECKOUT]

Generates REPOS repositories of mixed formats (safetensors, torch zip, pickle, GGUF-like
binary, ONNX-free configs and Python code); 20% of the weight files are byte-identical
copies across repositories (forks, re-uploads). Serves them with `mlwarden serve` in its
own process and runs a fleet scan per worker count, each with a fresh verdict cache and a
fresh results directory, in a fresh process. Prints repositories per second, the cache hit
rate, bytes read against the repositories' total size, and the speed-up of 2 workers over 1.
``--baseline DIR`` runs the same scans with another checkout's ``src/`` (e.g. an older
commit: ``git worktree add DIR COMMIT``) on the same repositories, after this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def safetensors_bytes(n: int, fill: int) -> bytes:
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + bytes([fill % 256]) * n


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + sys) a process and its waited-for children used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def make_repos(root: Path, n: int, seed: int = 0) -> Path:
    import io

    import torch

    rng = random.Random(seed)
    shared = [safetensors_bytes(2 * MiB, i) for i in range(10)]  # the duplicated files
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(4096)}, buf)
    torch_zip = buf.getvalue()
    repos = root / "repos"
    for i in range(n):
        d = repos / f"org{i % 20}" / f"model-{i:05d}"
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"model_type": "bert", "id": i}))
        kind = i % 4
        if rng.random() < 0.2:
            (d / "model.safetensors").write_bytes(rng.choice(shared))
        elif kind == 0:
            (d / "model.safetensors").write_bytes(safetensors_bytes(MiB + i, i))
        elif kind == 1:
            (d / "pytorch_model.bin").write_bytes(torch_zip + i.to_bytes(4, "little") * 0)
            (d / "extra.safetensors").write_bytes(safetensors_bytes(MiB, i))
        elif kind == 2:
            (d / "model.pkl").write_bytes(
                b"\x80\x04\x95" + (16).to_bytes(8, "little") + b"]\x94(K\x01K\x02e." + b"\x00" * 5)
            (d / "weights.safetensors").write_bytes(safetensors_bytes(MiB + i, i))
        else:
            (d / "modeling_x.py").write_text("import torch\nclass X(torch.nn.Module):\n"
                                             "    pass\n")
            (d / "model.safetensors").write_bytes(safetensors_bytes(MiB + 2 * i, i))
        if i % 50 == 7:
            (d / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    return repos


def publish_all(store_path: Path, repos: Path) -> list[str]:
    from mlwarden.store import Store
    from remote.support import publish

    store = Store.open(store_path)
    ids = []
    for org in sorted(repos.iterdir()):
        for d in sorted(org.iterdir()):
            ids.append(f"{org.name}/{d.name}")
            publish(store, d, ids[-1])
    store.close()
    return ids


def compile_sources(src: Path) -> None:
    """Installed packages come byte-compiled; an editable checkout does not, and this
    machine sets PYTHONDONTWRITEBYTECODE. Compile it so no run pays for compilation (the
    remote path imports more of mlwarden than the local one, so it would pay more)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--ray", action="store_true", help="Use --ray auto instead of processes.")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="Another checkout: the same runs with its src/ (before/after).")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-bench-fleet-"))
    server = None
    try:
        t = time.perf_counter()
        ids = publish_all(root / "store", make_repos(root, args.repos))
        print(f"generated and published {len(ids)} repositories in "
              f"{time.perf_counter() - t:.1f}s")
        (root / "repos.txt").write_text("\n".join(ids) + "\n")
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--store",
                                   str(root / "store"), "--port", str(port),
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
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MLWARDEN_"))}
        env.update({"HF_ENDPOINT": url, "HF_HOME": str(root / "hf"),
                    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "RAY_DISABLE_USAGE_STATS": "1",
                    "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        trees: list[tuple[str, Path | None]] = [("this tree", None)]
        if args.baseline is not None:
            trees.append((f"baseline {args.baseline}", args.baseline.resolve() / "src"))
        for label, src in trees:
            compile_sources(src or Path(__file__).resolve().parents[1] / "src")
            run_env = dict(env)
            if src is not None:
                run_env["PYTHONPATH"] = os.pathsep.join(
                    [str(src), *filter(None, [env.get("PYTHONPATH")])])
            print(f"-- {label}")
            rates = {}
            for w in [int(x) for x in args.workers.split(",")]:
                out = root / f"out-{len(rates)}-{w}-{src is None}"
                cache = root / f"cache-{w}-{src is None}.db"
                cmd = [sys.executable, "-m", "mlwarden", "fleet", "scan", "--repos",
                       str(root / "repos.txt"), "--out", str(out), "--cache", str(cache),
                       "--workers", str(w), "--format", "json", "--concurrency", "64"]
                if args.ray:
                    cmd += ["--ray", "auto"]
                t, before, served = time.perf_counter(), os.times(), proc_cpu(server.pid)
                proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
                wall = time.perf_counter() - t
                after = os.times()
                client = (after.children_user - before.children_user) + \
                    (after.children_system - before.children_system)
                served = proc_cpu(server.pid) - served
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-3000:])
                s = json.loads(proc.stdout)
                rates[w] = s["repositories"] / wall
                print(f"{w} worker(s): {s['repositories']} repos in {wall:.1f}s wall "
                      f"({rates[w]:.1f} repos/s; {s['repos_per_second']:.1f}/s inside the "
                      f"run, {1000 * s['seconds'] / max(1, s['repositories']):.1f} ms/repo), "
                      f"cache hit rate {s['cache_hit_rate']:.1%} of {s['files']} files, read "
                      f"{s['bytes_read'] / MiB:.1f} MiB of {s['total_bytes'] / MiB:.0f} MiB "
                      f"({s['bytes_read'] / max(1, s['total_bytes']):.3%}), verdicts "
                      f"{s['verdicts']}")
                n = max(1, s["repositories"])
                print(f"   CPU per repository: scanner {1000 * client / n:.1f} ms "
                      f"(coordinator and workers), registry {1000 * served / n:.1f} ms")
            if 1 in rates and 2 in rates:
                print(f"speed-up 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x "
                      "(shared machine: see docs/fleet.md)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
