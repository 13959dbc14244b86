"""Ctrl-C during a long scan exits 130 without a traceback or a partial report; a reader
that goes away (``| head``) is never reported as a verdict status."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.support import env


@pytest.fixture(scope="module")
def slow_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hard links to one large, benign pickle: several seconds of analysis per file."""
    d = tmp_path_factory.mktemp("slow")
    big = d / "big.pkl"
    big.write_bytes(pickle.dumps([str(i) for i in range(2_000_000)], protocol=2))
    for i in range(8):
        os.link(big, d / f"copy{i}.pkl")
    return d


def _interrupt(args: list[str], group: bool, after: float = 1.5) -> tuple[int, str, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", *args], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    time.sleep(after)
    assert proc.poll() is None, "the scan finished before it could be interrupted"
    if group:  # what a terminal does on Ctrl-C: the workers get SIGINT too
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize(("workers", "group"), [("1", False), ("2", True)])
def test_sigint_during_scan(slow_tree: Path, workers: str, group: bool) -> None:
    code, out, err = _interrupt(["scan", str(slow_tree), "-j", workers, "--format", "json"],
                                group)
    assert code == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    assert out == "", "no partial report on stdout"


def _close_early(args: list[str]) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", *args], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    return proc.returncode, err


def test_closed_pipe_is_not_a_verdict(tmp_path: Path) -> None:
    for i in range(400):
        (tmp_path / f"m{i}.pkl").write_bytes(pickle.dumps({"i": i}))
    for args in (["rules", "--format", "markdown"], ["scan", str(tmp_path), "-j", "1"]):
        code, err = _close_early(args)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert code in (0, 141), (args, code, err)


def test_serve_reports_its_port_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    import json
    import re
    import urllib.request

    from e2e.support import mlw

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    store = tmp_path / "store"
    assert mlw("import", model, "--repo", "org/m", "--store", store, "--approve").code == 0
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--store", str(store),
                             "--port", "0", "--allow-anonymous", "--log-level", "warning"],
                            env=env(), stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+) ", line)
        assert m and m.group(1) != "0", line  # the real port, not the requested 0
        url = f"http://127.0.0.1:{m.group(1)}/api/models/org/m"
        for _ in range(50):
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    info = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server never answered")
        assert info["id"] == "org/m"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
