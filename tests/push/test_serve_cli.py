"""`mlwarden serve` itself (a separate process) taking pushes, and the CLI around review."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlwarden.store import Store
from push.support import run_client


def _mlwarden(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def test_push_to_mlwarden_serve_then_cli_review(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    (tmp_path / "mlwarden.toml").write_text("[policy]\ntwo-person-review = true\n")
    push = _mlwarden("token", "create", "--store", store, "--scope", "acme:write",
                     "--name", "ci", "--owner", "ci-bot").stdout.strip()
    reader = _mlwarden("token", "create", "--store", store, "--scope", "acme:read").stdout.strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlwarden", "serve", "--store", store, "--port", "0",
         "--policy", str(tmp_path / "mlwarden.toml"), "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m and "review console" in line, line
        url = f"http://127.0.0.1:{m.group(1)}"
        f = tmp_path / "notes.md"
        f.write_text("# notes\n")
        deadline = time.monotonic() + 15
        while True:
            try:
                import httpx

                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        res = run_client(tmp_path, url, push, [
            {"op": "create_repo", "repo": "acme/cli"},
            {"op": "upload_file", "repo": "acme/cli", "path": "notes.md", "local": str(f)}])
        cid = res[1]["oid"]
        env = {**os.environ, "MLWARDEN_LOG_KEY": os.environ["MLWARDEN_LOG_KEY"]}
        toml = str(tmp_path / "mlwarden.toml")
        r = _mlwarden("approve", "--store", store, "acme/cli", cid[:12], "--by", "ci-bot",
                      "--policy", toml, env=env)
        assert r.returncode == 4 and "self-approval refused" in r.stderr
        r = _mlwarden("approve", "--store", store, "acme/cli", cid[:12], "--by", "alice", env=env)
        assert r.returncode == 0 and "1 more" in r.stdout  # recorded with the commit: two needed
        got = run_client(tmp_path / "a", url, reader, [
            {"op": "download", "repo": "acme/cli", "path": "notes.md", "stop_on_error": False}])
        assert not got[0]["ok"]
        r = _mlwarden("approve", "--store", store, "acme/cli", cid[:12], "--by", "bob", env=env)
        assert r.returncode == 0 and f"approved acme/cli@{cid}" in r.stdout
        # Another process approved: the server learns it within its access-epoch poll (2 s).
        deadline = time.monotonic() + 10
        while True:
            got = run_client(tmp_path / "b", url, reader, [
                {"op": "download", "repo": "acme/cli", "path": "notes.md", "hex": True,
                 "stop_on_error": False}])
            if got[0]["ok"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert bytes.fromhex(got[0]["bytes"]) == b"# notes\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    s = Store.open(store)
    actions = [e.action for e in s.audit(repo="acme/cli")]
    assert "push" in actions and "review-approve" in actions and "approve" in actions


def test_cli_refuse_and_option_errors(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    cid = _mlwarden("import", str(src), "--repo", "acme/r", "--store", store).stdout.strip()
    r = _mlwarden("approve", "--store", store, "acme/r", cid, "--refuse")
    assert r.returncode == 4 and "needs a note" in r.stderr
    r = _mlwarden("approve", "--store", store, "acme/r", cid, "--refuse", "--note", "no")
    assert r.returncode == 0 and "refused" in r.stdout
    r = _mlwarden("approve", "--store", store, "acme/r", cid)
    assert r.returncode == 4 and "was refused" in r.stderr
    r = _mlwarden("serve", "--store", store, "--public-url", "ftp://x")
    assert r.returncode == 4 and "--public-url" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\ntwo-person-review = 'yes'\n")
    r = _mlwarden("serve", "--store", store, "--policy", str(bad))
    assert r.returncode == 4 and "two-person-review" in r.stderr
