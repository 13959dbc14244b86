"""Faults: killed at every stage, two pulls at once, a full disk, a network failure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.conftest import REPO, Paths, Upstream, model_files
from airlock.hostile import HostileHub
from airlock.support import Live, isolated_env, run_cli, store_state
from mlwarden.airlock.hooks import CRASH_EXIT, STAGES
from mlwarden.manifest import load

BEFORE_COMMIT_POINT = STAGES[:STAGES.index("commit") + 1]  # manifest not yet written


def _pull_args(paths: Paths, url: str, *extra: str) -> list[str]:
    return ["pull", REPO, "--endpoint", url, "--store", str(paths.store), "--manifest",
            str(paths.manifest), *extra]


def _quarantines(paths: Paths) -> list[Path]:
    return list((paths.store / "tmp").glob("quarantine-*"))


def test_killed_at_every_stage(upstream: Upstream, paths: Paths, tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    # A previous state to preserve: the model pulled at tag v1 (same commit as main).
    assert run_cli(_pull_args(paths, upstream.url, "--revision", "v1"), env).returncode == 0
    before_manifest = paths.manifest.read_bytes()
    before_state = store_state(paths.store)
    paths.manifest.unlink()  # start without the model pinned, as a first pull would
    blank = store_state(paths.store)
    assert blank == before_state
    for stage in STAGES:
        proc = run_cli(_pull_args(paths, upstream.url), {**env, "MLWARDEN_TEST_CRASH_AT": stage})
        assert proc.returncode == CRASH_EXIT, (stage, proc.stderr)
        state = store_state(paths.store)
        if stage in BEFORE_COMMIT_POINT:
            # Nothing visible changed: no manifest, same served refs and approvals.
            assert not paths.manifest.exists(), stage
            assert state == blank, stage
        else:
            assert load(paths.manifest).get(REPO) is not None, stage
        if stage in ("resolve", "list"):
            assert not _quarantines(paths), stage
        # The next pull starts by clearing what the dead one left, and completes.
        proc = run_cli(_pull_args(paths, upstream.url), env)
        assert proc.returncode == 0, (stage, proc.stderr)
        assert not _quarantines(paths), stage
        assert load(paths.manifest).get(REPO).ref == "main"  # type: ignore[union-attr]
        paths.manifest.unlink()
    assert before_manifest  # the tag pull produced a manifest to start from


def test_two_concurrent_pulls(upstream: Upstream, paths: Paths, tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-m", "mlwarden", *_pull_args(paths,
                                                                            upstream.url)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    state = store_state(paths.store)
    assert state[REPO]["approved"] == [upstream.commit]
    entry = load(paths.manifest).get(REPO)
    assert entry is not None and entry.commit == upstream.commit and len(entry.files) == 5
    assert not _quarantines(paths)


def test_full_disk_leaves_clean_quarantine(tiny_model: Path, paths: Paths, tmp_path: Path,
                                           hostile: Callable[[HostileHub], Live]) -> None:
    files = model_files(tiny_model)
    # 2 MiB of valid safetensors: the remote pre-scan passes it, the download then fails.
    header = json.dumps({"w": {"dtype": "U8", "shape": [1 << 21],
                               "data_offsets": [0, 1 << 21]}}).encode()
    files["big.safetensors"] = (len(header).to_bytes(8, "little") + header
                                + bytes(range(256)) * 8192)
    live = hostile(HostileHub(REPO, files))
    env = isolated_env(tmp_path)
    mnt = tmp_path / "tiny-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0
    try:
        store = mnt / "store" if mounted else paths.store
        extra = {} if mounted else {"MLWARDEN_TEST_FAIL_WRITE": str(1 << 20)}
        proc = run_cli(["pull", REPO, "--endpoint", live.url, "--store", str(store),
                        "--manifest", str(paths.manifest)], {**env, **extra})
        assert proc.returncode == 4, proc.stderr
        assert "cannot write the quarantine" in proc.stderr and "No space left" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not list((store / "tmp").glob("quarantine-*"))
        assert not paths.manifest.exists()
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], check=False)


def test_enospc_hook_leaves_clean_quarantine(tiny_model: Path, paths: Paths, tmp_path: Path,
                                             hostile: Callable[[HostileHub], Live]) -> None:
    live = hostile(HostileHub(REPO, model_files(tiny_model)))
    proc = run_cli(_pull_args(paths, live.url),
                   {**isolated_env(tmp_path), "MLWARDEN_TEST_FAIL_WRITE": "1000"})
    assert proc.returncode == 4
    assert "cannot write the quarantine" in proc.stderr and "No space left" in proc.stderr
    assert not _quarantines(paths) and store_state(paths.store) == {}


def test_network_drop_mid_pull(tiny_model: Path, paths: Paths, tmp_path: Path,
                               hostile: Callable[[HostileHub], Live]) -> None:
    live = hostile(HostileHub(REPO, model_files(tiny_model), {"get-500"}))
    proc = run_cli(_pull_args(paths, live.url), isolated_env(tmp_path))
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert not _quarantines(paths) and store_state(paths.store) == {}


@pytest.fixture(autouse=True)
def _no_stray_mounts(tmp_path: Path) -> None:
    yield  # type: ignore[misc]
    shutil.rmtree(tmp_path / "tiny-disk", ignore_errors=True)


def test_no_token_leaks_to_the_upstream(tiny_model: Path, paths: Paths, tmp_path: Path,
                                        hostile: Callable[[HostileHub], Live]) -> None:
    """hub-protocol.md §8: a stored or ambient HF token must not reach a mirror."""
    hub = HostileHub(REPO, model_files(tiny_model))
    live = hostile(hub)
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text("hf_stored_token_must_not_leak")
    env = {**isolated_env(tmp_path), "HF_TOKEN": "hf_env_token_must_not_leak"}
    env.pop("HF_HUB_DISABLE_IMPLICIT_TOKEN", None)
    proc = run_cli(_pull_args(paths, live.url), env)
    assert proc.returncode == 0, proc.stderr
    assert hub.auth_seen == []
    # An explicit upstream token is sent, and only that one.
    paths.manifest.unlink()
    proc = run_cli(_pull_args(paths, live.url, "--token", "explicit"), env)
    assert proc.returncode == 0, proc.stderr
    assert set(hub.auth_seen) == {"Bearer explicit"}
