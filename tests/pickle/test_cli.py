"""End to end through the ``mlwarden scan --format json`` command."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

from corpus.pickles import malicious_samples


def test_cli_json_verdicts_and_exit_status(tmp_path: Path) -> None:
    samples = malicious_samples(str(tmp_path / "MARKER"))
    (tmp_path / "weights.model").write_bytes(samples["dotted-logging-os-system"])
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "--format", "json",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    bad = by_name["weights.model"]
    assert bad["verdict"] == "malicious" and bad["format"] == "pickle"
    rules = {f["rule"] for f in bad["findings"]}
    assert "pickle-dangerous-callable" in rules
    assert any("logging.os.system" in f["message"] and "pickle #1" in f["location"]
               for f in bad["findings"])
    assert by_name["ok.pkl"]["verdict"] == "clean"
    assert not (tmp_path / "MARKER").exists()


def test_cli_clean_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "--format", "json",
                           str(tmp_path / "a.pkl")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["files"][0]["verdict"] == "clean"
