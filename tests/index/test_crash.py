"""A process killed during admission leaves nothing half-admitted: no file row, nothing
served, and the next request admits the file from scratch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.conftest import policy_text
from index.support import authed, installed, pip_install
from mlwarden.approvals import verify_log
from mlwarden.index.model import State
from mlwarden.index.policy import Policy
from mlwarden.index.storage import IndexStorage
from mlwarden.store import Store


def serve(store: Path, policy: Path, crash_at: str | None) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env.pop("MLWARDEN_TEST_CRASH_AT", None)
    if crash_at:
        env["MLWARDEN_TEST_CRASH_AT"] = crash_at
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlwarden", "index", "serve", "--store", str(store),
         "--policy", str(policy), "--port", "0", "--log-level", "warning",
         "--confusion-every", "0"], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/simple/)", line)
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("index server did not start")


@pytest.mark.parametrize("stage", ["index-download", "index-inspect", "index-blob",
                                   "index-record"])
def test_kill_during_admission(stage, tmp_path, upstream):
    store_path = tmp_path / "store"
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text(upstream.url))
    store = Store.open(store_path)
    _, token = store.create_token("ci", ["pkg:*:read"])
    store.close()
    proc, url = serve(store_path, policy, stage)
    try:
        r = pip_install(tmp_path, authed(url, token), "--retries", "0", "libb")
        assert r.returncode != 0
        assert proc.wait(timeout=30) == 99  # the fault hook's os._exit, like a SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store.open(store_path)
    storage = IndexStorage(store)
    assert storage.get("libb-1.0-py3-none-any.whl") is None  # nothing half-admitted
    assert storage.projects() == []
    store.close()
    proc, url = serve(store_path, policy, None)
    try:
        r = pip_install(tmp_path, authed(url, token), "libb")
        assert r.returncode == 0, installed(r)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = Store.open(store_path)
    f = IndexStorage(store).get("libb-1.0-py3-none-any.whl")
    assert f is not None and f.state is State.ADMITTED
    assert store.blobs.exists(f.sha256 or "")
    assert verify_log(store).ok
    assert Policy.load(policy).minimum_age > 0
    store.close()
