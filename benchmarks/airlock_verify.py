"""`mlwarden verify` throughput against a plain parallel hashlib sha256 of the same files.

    python benchmarks/airlock_verify.py [--gib 4] [--files 16] [--rounds 3] [--keep DIR]

Builds a store of GIB GiB (FILES blobs, one commit, a manifest pinning every file), warms
the page cache, then alternates: (a) a ThreadPoolExecutor of hashlib.file_digest over the
blob files, one thread per CPU; (b) mlwarden.airlock.verify.verify() on the manifest; and
(c) the `mlwarden verify` command (process start-up included). Prints GiB/s and the
ratios; the target is verify >= 0.9x the plain hashing throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20


def build(root: Path, gib: float, n_files: int) -> tuple[Path, Path, list[Path]]:
    from mlwarden.manifest import ManifestFile, ModelEntry, update
    from mlwarden.store import FileEntry, Store
    from mlwarden.store.hashing import git_blob_sha1, lfs_pointer

    store = Store.open(root / "store")
    per_file = int(gib * GiB) // n_files
    pattern = os.urandom(64 * MiB)
    entries: list[FileEntry] = []
    blobs: list[Path] = []
    for i in range(n_files):
        tmp = root / f"f{i}.tmp"
        h = hashlib.sha256()
        with open(tmp, "wb") as fh:
            left = per_file
            first = True
            while left:
                chunk = pattern[: min(left, len(pattern))]
                if first:  # make every file distinct
                    chunk = i.to_bytes(8, "little") + chunk[8:]
                    first = False
                fh.write(chunk)
                h.update(chunk)
                left -= len(chunk)
        sha = h.hexdigest()
        dest = store.blobs.local_path(sha)  # the filesystem backend: local files
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        blobs.append(dest)
        entries.append(FileEntry(f"model-{i:05d}.safetensors", sha, per_file, True,
                                 git_blob_sha1(lfs_pointer(sha, per_file))))
    commit = store.commit_files(entries, "bench/big", branch="main", message="bench",
                                author="bench", approve=True)
    store.close()
    manifest = root / "model-manifest.yaml"
    update(manifest, lambda m: m.with_model("bench/big", ModelEntry(
        commit=commit.id, files={e.path: ManifestFile(e.sha256, e.size) for e in entries})))
    return root / "store", manifest, blobs


def plain(blobs: list[Path], workers: int) -> float:
    def one(p: Path) -> str:
        with open(p, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, blobs))
    return time.perf_counter() - t


def api(store_path: Path, manifest: Path) -> float:
    from mlwarden.airlock.verify import verify
    from mlwarden.manifest import load
    from mlwarden.store import Store

    t = time.perf_counter()
    store = Store.open(store_path, create=False)
    result = verify(load(manifest), store)
    store.close()
    elapsed = time.perf_counter() - t
    assert not result.events, result.events[:3]
    return elapsed


def cli(store_path: Path, manifest: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "verify", "--store",
                           str(store_path), "--manifest", str(manifest), "--format", "json"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mlwarden-bench-verify-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        store_path, manifest, blobs = build(root, args.gib, args.files)
        total = sum(p.stat().st_size for p in blobs)
        print(f"store: {total / GiB:.2f} GiB in {len(blobs)} blobs "
              f"(built in {time.perf_counter() - t:.1f}s); cpus={os.cpu_count()}")
        workers = os.cpu_count() or 1
        plain(blobs, workers)  # warm the page cache
        times: dict[str, list[float]] = {"plain": [], "api": [], "cli": []}
        for _ in range(args.rounds):
            times["plain"].append(plain(blobs, workers))
            times["api"].append(api(store_path, manifest))
            times["cli"].append(cli(store_path, manifest))
        best = {k: min(v) for k, v in times.items()}
        for k, v in best.items():
            print(f"{k:6} best {v:.3f}s  {total / GiB / v:.2f} GiB/s  "
                  f"(all: {', '.join(f'{x:.3f}' for x in times[k])})")
        print(f"ratio verify(API)/plain throughput: {best['plain'] / best['api']:.2f}x "
              "(target >= 0.9)")
        print(f"ratio `mlwarden verify` command/plain throughput: "
              f"{best['plain'] / best['cli']:.2f}x (includes interpreter start-up)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
