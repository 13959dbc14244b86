"""`mlwarden fleet scan`: local processes and Ray, the verdict cache, resumption after
kill -9, a killed worker, PostgreSQL results and cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airlock.support import isolated_env
from remote.support import publish

EVIL = b"cos\nsystem\n(S'true'\ntR."


def make_repos(tmp: Path, store: Any, n: int) -> list[str]:
    """n repositories; every third shares a weights file with the others (a fork)."""
    import numpy as np
    from safetensors.numpy import save_file

    shared = tmp / "shared.safetensors"
    save_file({"w": np.ones(70_000, np.float32)}, str(shared))  # LFS-sized
    ids = []
    for i in range(n):
        d = tmp / f"src{i}"
        d.mkdir()
        if i % 3 == 0:
            (d / "model.safetensors").write_bytes(shared.read_bytes())
        else:
            save_file({"w": np.full(70_000, i, np.float32)}, str(d / "model.safetensors"))
        (d / "config.json").write_text(json.dumps({"model_type": "bert", "i": i}))
        if i % 5 == 4:
            (d / "extra.pkl").write_bytes(EVIL)
        repo = f"org{i % 2}/model-{i:03d}"
        publish(store, d, repo)
        ids.append(repo)
    return ids


def fleet(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", "fleet", "scan", *args], env=env,
                          capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def results(out: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    from mlwarden.fleet import read_parquet

    repos, files = read_parquet(out)
    r = sorted((x["repo"], x["commit"], x["status"], x["verdict"], x["files"])
               for x in repos.to_pylist())
    f = sorted((x["repo"], x["path"], x["verdict"], x["sha256"], x["rules"])
               for x in files.to_pylist())
    return r, f


@pytest.fixture
def served(tmp_path: Path, registry: Any) -> tuple[str, list[str], dict[str, str]]:
    store, start = registry
    ids = make_repos(tmp_path, store, 12)
    live = start()
    (tmp_path / "repos.txt").write_text("\n".join(ids) + "\n# a comment\n")
    env = isolated_env(tmp_path, HF_ENDPOINT=live.url)
    return live.url, ids, env


def test_fleet_local_processes_cache_and_summary(tmp_path: Path, served: Any) -> None:
    _url, ids, env = served
    out = tmp_path / "out"
    args = ["--repos", str(tmp_path / "repos.txt"), "--out", str(out), "--workers", "2",
            "--cache", str(tmp_path / "cache.db"), "--format", "json"]
    proc = fleet([*args, "--summary", str(tmp_path / "summary.png")], env)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["repositories"] == 12
    assert stats["verdicts"] == {"clean": 10, "malicious": 2}
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    repos, files = results(out)
    assert [r[0] for r in repos] == sorted(f"hf://{i}" for i in ids)
    assert all(len(r[1]) == 40 for r in repos)
    assert {(f[1], f[2]) for f in files if f[1] == "extra.pkl"} == {("extra.pkl", "malicious")}
    # a second run over a fresh results directory: every LFS file comes from the cache
    proc = fleet([*args[:2], "--out", str(tmp_path / "out2"), *args[4:]], env)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["cached_files"] >= 12 and again["bytes_read"] < stats["bytes_read"]
    assert results(tmp_path / "out2") == (repos, files)
    # same results directory: nothing left to do
    proc = fleet(args, env)
    assert json.loads(proc.stdout)["skipped"] == 12


def test_org_and_registry_inputs(tmp_path: Path, served: Any) -> None:
    url, ids, env = served
    proc = fleet(["--org", "org1", "--out", str(tmp_path / "o"), "--no-cache", "--workers",
                  "1", "--format", "json"], env)
    assert proc.returncode == 0, proc.stderr
    repos, _ = results(tmp_path / "o")
    assert [r[0] for r in repos] == sorted(f"hf://{i}" for i in ids if i.startswith("org1/"))
    proc = fleet(["--registry", url, "--out", str(tmp_path / "r"), "--no-cache", "--workers",
                  "1", "--format", "json"], env)
    assert proc.returncode == 0, proc.stderr
    assert len(results(tmp_path / "r")[0]) == 12


def test_kill_9_then_resume_gives_the_same_results(tmp_path: Path, served: Any) -> None:
    _url, _ids, env = served
    whole = tmp_path / "whole"
    proc = fleet(["--repos", str(tmp_path / "repos.txt"), "--out", str(whole), "--no-cache",
                  "--workers", "1"], env)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "killed"
    args = ["--repos", str(tmp_path / "repos.txt"), "--out", str(out), "--no-cache",
            "--workers", "1"]
    p = subprocess.Popen([sys.executable, "-m", "mlwarden", "fleet", "scan", *args],
                         env={**env, "MLWARDEN_FLEET_BATCH": "1"}, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("repos-*.parquet")):
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(10)
    partial = len(results(out)[0])
    assert 0 < partial < 12, partial
    proc = fleet([*args, "--format", "json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped"] == partial
    assert results(out) == results(whole)  # nothing lost, nothing twice


def test_ray_two_workers_with_a_killed_worker(tmp_path: Path, served: Any) -> None:
    pytest.importorskip("ray")
    _url, _ids, env = served
    local = tmp_path / "local"
    assert fleet(["--repos", str(tmp_path / "repos.txt"), "--out", str(local), "--no-cache",
                  "--workers", "2"], env).returncode == 0
    out = tmp_path / "ray"
    marker = tmp_path / "killed-once"
    proc = fleet(["--repos", str(tmp_path / "repos.txt"), "--out", str(out), "--ray", "auto",
                  "--workers", "2", "--cache", str(tmp_path / "cache.db"), "--format", "json"],
                 {**env, "MLWARDEN_TEST_KILL_WORKER": str(marker),
                  "RAY_DISABLE_USAGE_STATS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.exists()  # a worker really died mid-run
    assert results(out) == results(local)


def test_postgres_results_and_cache(tmp_path: Path, served: Any, postgres_url: str) -> None:
    _url, _ids, env = served
    args = ["--repos", str(tmp_path / "repos.txt"), "--out", postgres_url, "--run", "t1",
            "--cache", postgres_url, "--workers", "2", "--format", "json"]
    proc = fleet(args, env)
    assert proc.returncode == 0, proc.stderr
    from mlwarden.store.db import open_database

    db = open_database(postgres_url, tmp_path)
    try:
        repos = db.read("SELECT repo, verdict FROM fleet_repos WHERE run = 't1'")
        assert len(repos) == 12
        assert sum(1 for _, v in repos if v == "malicious") == 2
        n_files = db.read("SELECT count(*) FROM fleet_files WHERE run = 't1'")[0][0]
        assert n_files == 12 * 2 + 2
        assert db.read("SELECT count(*) FROM scan_verdicts")[0][0] > 0
    finally:
        db.close()
    proc = fleet(args, env)
    assert json.loads(proc.stdout)["skipped"] == 12
