"""The ``mlwarden lint`` command: formats, exit codes, selection, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlwarden.cli.main import cli

BAD = "import torch\nfrom transformers import AutoModel\ntorch.load('m.pt')\n" \
      "AutoModel.from_pretrained('org/m', trust_remote_code=True)\n"


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["lint", *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.output


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text("import torch\ntorch.load('m.pt', weights_only=True)\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "skipped.py").write_text(BAD)
    (tmp_path / "notes.txt").write_text(BAD)
    return tmp_path


def test_json_shape(project: Path) -> None:
    code, out = run(str(project), "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert set(doc) >= {"findings", "summary"}
    keys = {"path", "line", "col", "rule", "severity", "message"}
    for f in doc["findings"]:
        assert keys <= set(f)
        assert isinstance(f["line"], int) and isinstance(f["col"], int) and f["col"] >= 1
    got = {(Path(f["path"]).name, f["line"], f["rule"]) for f in doc["findings"]}
    assert got == {("bad.py", 3, "lint-torch-load-implicit"),
                   ("bad.py", 4, "lint-unpinned-revision"),
                   ("bad.py", 4, "lint-trust-remote-code")}
    assert doc["summary"]["files"] == 2  # .venv and non-Python files are not walked
    trc = next(f for f in doc["findings"] if f["rule"] == "lint-trust-remote-code")
    assert trc["severity"] == "high" and trc["fix"]
    assert trc["col"] == 36  # 1-based column of the keyword


def test_sarif_structure(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "lint.sarif"
    code, _ = run(str(project / "bad.py"), "--format", "sarif", "--output", str(out))
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0"
    run0 = doc["runs"][0]
    ids = {r["id"] for r in run0["tool"]["driver"]["rules"]}
    assert ids == {"lint-torch-load-implicit", "lint-unpinned-revision",
                   "lint-trust-remote-code"}
    for res in run0["results"]:
        assert res["ruleId"] in ids
        assert run0["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_table_and_clean_exit(project: Path) -> None:
    code, out = run(str(project / "good.py"))
    assert code == 0 and "1 files: 1 clean" in out and "good.py" not in out
    code, out = run(str(project / "good.py"), "--verbose")
    assert code == 0 and "good.py" in out
    code, out = run(str(project / "bad.py"))
    assert code == 1 and "lint-trust-remote-code" in out


def test_fail_on_and_select_ignore(project: Path) -> None:
    bad = str(project / "bad.py")
    assert run(bad, "--fail-on", "high")[0] == 1  # trust_remote_code is high
    assert run(bad, "--fail-on", "critical")[0] == 0
    assert run(bad, "--fail-on", "never")[0] == 0
    code, out = run(bad, "--format", "json", "--select", "lint-torch")
    assert {f["rule"] for f in json.loads(out)["findings"]} == {"lint-torch-load-implicit"}
    code, out = run(bad, "--format", "json",
                    "--ignore", "lint-trust-remote-code,lint-unpinned-revision")
    assert {f["rule"] for f in json.loads(out)["findings"]} == {"lint-torch-load-implicit"}
    code, out = run(bad, "--format", "json", "--ignore", "lint-torch", "--fail-on", "high",
                    "--select", "lint-torch-load-implicit")
    assert json.loads(out)["findings"] == [] and code == 0


def test_bad_input_exits_4_without_traceback(tmp_path: Path) -> None:
    code, out = run(str(tmp_path / "missing.py"))
    assert code == 4 and "no such file" in out and "Traceback" not in out
    code, out = run(str(tmp_path), "--select", "lint-nonexistent")
    assert code == 4 and "unknown lint rule" in out


@pytest.mark.parametrize("content,needle", [
    (b"def f(:\n    pass\n", "syntax error at line 1"),
    (b"x = 1\x00\n", "null"),
    (b"# -*- coding: nope -*-\nx = 1\n", "cannot decode"),
    (b"x = '\xff\xfe'\n", "cannot decode"),
    (b"x = " + b"(" * 300 + b")" * 300 + b"\n", ""),
    (b"x = " + b"+".join([b"1"] * 30000) + b"\n", ""),
])
def test_unparsable_file_is_a_finding_and_exit_4(tmp_path: Path, content: bytes,
                                                 needle: str) -> None:
    p = tmp_path / "broken.py"
    p.write_bytes(content)
    (tmp_path / "ok.py").write_text("import torch\ntorch.load('m')\n")
    code, out = run(str(tmp_path), "--format", "json")
    assert code == 4
    doc = json.loads(out)
    broken = [f for f in doc["findings"] if f["path"].endswith("broken.py")]
    assert [f["rule"] for f in broken] == ["lint-unparsable"]
    assert needle.lower() in broken[0]["message"].lower()
    assert any(f["rule"] == "lint-torch-load-implicit" for f in doc["findings"])


def test_notebook_cells(tmp_path: Path) -> None:
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["torch.load('x')"]},
        {"cell_type": "code", "source": ["import torch\n", "%matplotlib inline\n"]},
        {"cell_type": "code", "source": "!pip install x\nm = torch.load('m.pt')\n"},
    ], "metadata": {}, "nbformat": 4}
    p = tmp_path / "a.ipynb"
    p.write_text(json.dumps(nb))
    code, out = run(str(p), "--format", "json")
    assert code == 1
    (f,) = json.loads(out)["findings"]
    assert (f["rule"], f["line"], f["cell"]) == ("lint-torch-load-implicit", 2, "cell 3")
    p.write_text("{not json")
    code, out = run(str(p), "--format", "json")
    assert code == 4 and json.loads(out)["findings"][0]["rule"] == "lint-unparsable"


def test_console_entry_point_subprocess(tmp_path: Path) -> None:
    p = tmp_path / "x.py"
    p.write_text(BAD)
    r = subprocess.run([sys.executable, "-m", "mlwarden", "lint", str(p), "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert len(json.loads(r.stdout)["findings"]) == 3


def test_pre_commit_hook_definition() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    hooks = yaml.safe_load((root / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "mlwarden-lint")
    assert hook["entry"] == "mlwarden lint" and hook["language"] == "python"
    assert hook["types"] == ["python"]


def test_large_generated_file_stays_linear(tmp_path: Path) -> None:
    """A 20k-entry table plus 20k item assignments lints in seconds, not minutes."""
    import time

    from mlwarden.lint.engine import lint_text

    src = ("T = {" + ",".join(f"'k{i}': {i}" for i in range(20000)) + "}\nd = {}\n"
           + "".join(f"d['k{i}'] = {i}\n" for i in range(20000))
           + "import torch\ntorch.load('x', **{'weights_only': False})\n")
    start = time.monotonic()
    found = lint_text(src)
    assert time.monotonic() - start < 20
    assert [f.rule.id for f in found] == ["lint-torch-load-weights-only-false"]
