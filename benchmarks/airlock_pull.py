"""`mlwarden pull` against a plain huggingface_hub `snapshot_download` of the same repository
from the same loopback registry.

    python benchmarks/airlock_pull.py [--mib 512] [--files 4] [--rounds 3]
                                      [--baseline OTHER_CHECKOUT]

Imports a repository of MIB MiB (FILES valid safetensors files plus a config) into an
upstream store and serves it with `mlwarden serve` in its own process. Then alternates, each
as a fresh process: (a) `snapshot_download(repo, endpoint=URL)` into an empty cache; (b)
`mlwarden pull repo --endpoint URL` into an empty store with a cold scan cache; (c) the
same with a warm scan cache. Prints wall times and the pull/snapshot ratio (target <= 1.2x).
Pull does more work: per-file HEAD checks, sha256 of every byte, scan, policy, promotion.
``--baseline DIR`` (repeatable) adds the same two pulls with another checkout's ``src/``
in every round (e.g. ``git worktree add DIR 5e14a81``, the pull before the remote
pre-scan). CPU seconds
(user + sys) are printed too: on a shared machine they move far less with the load.
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
REPO = "bench/pull-model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_repo(path: Path, mib: int, n_files: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    per = mib * MiB // n_files
    for i in range(n_files):
        save_file({"w": rng.integers(0, 255, size=per, dtype=np.uint8)},
                  str(path / f"model-{i + 1:05d}-of-{n_files:05d}.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MLWARDEN_"))}
    env.update({"HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
                "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process)."""
    before = os.times()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{proc.stderr[-3000:]}")
    return elapsed, (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", type=Path, action="append", default=[],
                    help="Another checkout (repeatable): its pulls are timed in the same "
                         "rounds.")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlwarden-bench-pull-"))
    server = None
    try:
        from mlwarden.registry.importer import import_directory
        from mlwarden.store import Store

        make_repo(root / "model", args.mib, args.files)
        up = Store.open(root / "upstream")
        assert import_directory(up, root / "model", REPO, approve=True).commit is not None
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
        snap = ("import sys; from huggingface_hub import snapshot_download; "
                "snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3], "
                "token=False)")
        trees: list[tuple[str, Path | None]] = [("pull", None)]
        for i, other in enumerate(args.baseline, 1):
            trees.append((f"baseline{i} pull", other.resolve() / "src"))
            print(f"baseline{i}: {other}")
        times: dict[str, list[tuple[float, float]]] = {"snapshot_download": []}
        for r in range(args.rounds):
            d = root / f"round{r}"
            d.mkdir()
            env = env_for(d)
            times["snapshot_download"].append(timed(
                [sys.executable, "-c", snap, REPO, url, str(d / "hf-cache")], env))
            for name, src in trees:
                run_env = env if src is None else {**env, "PYTHONPATH": str(src)}
                cache = d / f"scan-{name.replace(' ', '-')}"
                for temp in ("cold", "warm"):
                    label = f"{name} ({temp} cache)"
                    store = d / f"store-{name.replace(' ', '-')}-{temp}"
                    times.setdefault(label, []).append(timed(
                        [sys.executable, "-m", "mlwarden", "pull", REPO, "--endpoint", url,
                         "--store", str(store), "--manifest", str(d / f"{store.name}.yaml"),
                         "--scan-cache", str(cache), "--format", "json"], run_env))
            shutil.rmtree(d, ignore_errors=True)
        best = {k: min(w for w, _ in v) for k, v in times.items()}
        cpu = {k: min(c for _, c in v) for k, v in times.items()}
        size = args.mib
        for k, v in best.items():
            print(f"{k:28} best {v:.2f}s  {size / v:.0f} MiB/s  CPU {cpu[k]:.2f}s  "
                  f"(all: {', '.join(f'{w:.2f}' for w, _ in times[k])})")
        base = best["snapshot_download"]
        for name, _ in trees:
            print(f"ratio {name}/snapshot_download time: cold "
                  f"{best[f'{name} (cold cache)'] / base:.2f}x, warm "
                  f"{best[f'{name} (warm cache)'] / base:.2f}x (target <= 1.2)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
