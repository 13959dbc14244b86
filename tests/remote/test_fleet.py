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


def test_ray_two_workers_with_a_killed_worker(tmp_path: Path, served: Any,
                                             ray_local: Path) -> None:
    """The Ray executor on the session's local instance (2 CPUs), in-process, with 2
    workers, one of them SIGKILLed mid-run: the results equal those of the same worker
    function run here, one repository after another; nothing lost or recorded twice."""
    from mlwarden.fleet import FleetOptions, RepoTask, open_sink, run_fleet
    from mlwarden.fleet.worker import WorkerConfig, scan_repo

    url, ids, _env = served
    tasks = [RepoTask(f"hf://{i}", url) for i in ids]
    open_sink(str(tmp_path / "whole")).write(
        [scan_repo(t, 1, True, WorkerConfig(None)) for t in tasks])
    ray_local.mkdir()  # arm: the first job kills its worker
    stats = run_fleet(tasks, open_sink(str(tmp_path / "ray")),
                      FleetOptions(workers=2, ray="auto", cache_url=str(tmp_path / "c.db")))
    assert (ray_local / "killed").exists()  # a worker really died mid-run
    assert stats.done == 12 and stats.verdicts == {"clean": 10, "malicious": 2}
    assert results(tmp_path / "ray") == results(tmp_path / "whole")


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


def test_workers_share_pauses_not_requests() -> None:
    """Each worker enforces its share of the limits locally; a 429 pause seen by one
    reaches the others through the board at their next refresh, with no per-request call."""
    from mlwarden.scan.sources.polite import LocalLimiter, Politeness, ShareLimiter, share

    calls: list[str] = []

    class Board(LocalLimiter):
        def paused_for(self, endpoint: str) -> float:
            calls.append(endpoint)
            return super().paused_for(endpoint)

    board = Board()
    part = share(Politeness(concurrency=5, rate=10.0), 2)
    assert (part.concurrency, part.rate) == (3, 5.0)
    a, b = ShareLimiter(board, part, refresh=0.05), ShareLimiter(board, part, refresh=0.05)
    for _ in range(3):
        assert a.try_acquire("http://hub") >= 0
    assert len(calls) == 1  # one board read, however many requests
    a.release("http://hub")
    b.try_acquire("http://hub")
    a.pause("http://hub", 2.0)
    time.sleep(0.06)
    assert b.try_acquire("http://hub") > 1.0  # b learned of a's pause at its refresh
