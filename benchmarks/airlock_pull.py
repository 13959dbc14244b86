"""`mlwarden pull` against a plain huggingface_hub `snapshot_download` of the same repository
from the same loopback registry.

    python benchmarks/airlock_pull.py [--mib 512] [--files 4] [--rounds 3]
                                      [--baseline OTHER_CHECKOUT]

Imports a repository of MIB MiB (FILES valid safetensors files plus a config) into an
upstream store and serves it with `mlwarden serve` in its own process. Then alternates, each
as a fresh process: (a) `snapshot_download(repo, endpoint=URL)` into an empty cache; (b)
`mlwarden pull repo --endpoint URL` into an empty store with a cold scan cache; (c) the
same with a warm scan cache. Prints wall times and the pull/snapshot ratio (target <= 1.2x).
Pull does more work: per-file HEAD checks, sha256 of every byte, fsync, scan, policy,
promotion. So a second peer, ``snapshot_download+verify``, is the same download plus what
pull guarantees before it promotes anything (every blob hashed against its Hub digest and
fsynced), and the ratio against it is printed too.
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


VERIFIED = "snapshot_download+verify"
# The same download with the guarantees pull gives before it promotes anything: every blob
# hashed and compared with the name the Hub metadata gave it (LFS sha256 or git blob sha1),
# and made durable (fsync of each blob and its directory). Threads as snapshot_download's.
SNAPSHOT_VERIFIED = """
import hashlib, os, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from huggingface_hub import snapshot_download
snap = Path(snapshot_download(sys.argv[1], endpoint=sys.argv[2], cache_dir=sys.argv[3],
                              token=False))
def check(blob):
    size = blob.stat().st_size
    h = hashlib.sha256() if len(blob.name) == 64 else hashlib.sha1(b"blob %d\\0" % size)
    with open(blob, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
        os.fsync(fh.fileno())
    if h.hexdigest() != blob.name:
        raise SystemExit(f"{blob}: digest mismatch")
blobs = sorted((snap.parent.parent / "blobs").iterdir())
with ThreadPoolExecutor(8) as pool:
    list(pool.map(check, blobs))
fd = os.open(blobs[0].parent, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
"""


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


def settle(out: Path) -> None:
    """Delete what a run wrote and flush the disk, so that the next run starts from the
    same state: no dirty pages of an earlier run to write back (snapshot_download does not
    fsync), no page cache growing run after run to be reclaimed by whoever comes later."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()


def compile_sources(src: Path) -> None:
    """Installed packages come byte-compiled; an editable checkout does not, and this
    machine sets PYTHONDONTWRITEBYTECODE. Compile it so no run pays for compilation (the
    remote path imports more of mlwarden than the local one, so it would pay more)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)


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
        compile_sources(Path(__file__).resolve().parents[1] / "src")
        sv = [sys.executable, "-c", SNAPSHOT_VERIFIED, REPO, url]
        trees: list[tuple[str, Path | None]] = [("pull", None)]
        for i, other in enumerate(args.baseline, 1):
            trees.append((f"baseline{i} pull", other.resolve() / "src"))
            compile_sources(other.resolve() / "src")
            print(f"baseline{i}: {other}")
        times: dict[str, list[tuple[float, float]]] = {"snapshot_download": [],
                                                       VERIFIED: []}
        for r in range(args.rounds):
            d = root / f"round{r}"
            d.mkdir()
            env = env_for(d)
            times["snapshot_download"].append(timed(
                [sys.executable, "-c", snap, REPO, url, str(d / "hf-cache")], env))
            settle(d / "hf-cache")
            times[VERIFIED].append(timed([*sv, str(d / "hf-cache-verified")], env))
            settle(d / "hf-cache-verified")
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
                    settle(store)
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
            print(f"ratio {name}/{VERIFIED} time: cold "
                  f"{best[f'{name} (cold cache)'] / best[VERIFIED]:.2f}x, warm "
                  f"{best[f'{name} (warm cache)'] / best[VERIFIED]:.2f}x (same guarantees)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
