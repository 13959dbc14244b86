"""CLI contract of `mlwarden deps`: exit codes, JSON shape, SARIF, --output, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from deps.deps_support import flat, run_cli


def test_clean_project_exits_zero(project, tmp_path: Path) -> None:
    project("requirements.txt", "rich==13.7.1 --hash=sha256:aa\n")
    result = run_cli("deps", str(tmp_path), "--offline", "--format", "json")
    assert result.exit_code == 0 and flat(result) == []
    doc = json.loads(result.output)
    assert doc["summary"]["verdict"] == "clean" and doc["command"] == "deps"


def test_json_shape_and_exit_codes(project, tmp_path: Path) -> None:
    project("requirements.txt", "torchtriton==3.0.0 --hash=sha256:aa\nrich>=13\n")
    result = run_cli("deps", str(tmp_path), "--offline", "--format", "json")
    assert result.exit_code == 1
    for f in flat(result):
        assert {"path", "line", "col", "rule", "severity", "message"} <= set(f)
    result = run_cli("deps", str(tmp_path), "--offline", "--fail-on", "never")
    assert result.exit_code == 0 and "torchtriton" in result.output


def test_sarif_and_output_file(project, tmp_path: Path) -> None:
    project("requirements.txt", "reqeusts==1.0 --hash=sha256:aa\n")
    out = tmp_path / "out" / "deps.sarif"
    result = run_cli("deps", str(tmp_path / "requirements.txt"), "--offline", "--format",
                     "sarif", "--output", str(out))
    assert result.exit_code == 3 and result.output == ""
    sarif = json.loads(out.read_text())
    res = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in res] == [("deps-typosquat", 1)]


def test_table_output_and_subcommand_dispatch(project, tmp_path: Path,
                                              monkeypatch) -> None:
    project("requirements.txt", "colourama==0.1 --hash=sha256:aa\n")
    monkeypatch.chdir(tmp_path)
    result = run_cli("deps", "--offline")  # PATH defaults to "."
    assert result.exit_code == 1 and "deps-known-malicious" in result.output
    result = run_cli("deps", "audit", ".", "--offline")
    assert result.exit_code == 1
    assert "inspect" in run_cli("deps", "--help").output


def test_usage_errors_exit_4(tmp_path: Path) -> None:
    result = run_cli("deps", str(tmp_path / "nope"))
    assert result.exit_code == 4 and "no such file" in result.output
    (tmp_path / "random.bin").write_bytes(b"\0")
    assert run_cli("deps", str(tmp_path / "random.bin")).exit_code == 4
    assert run_cli("deps", "inspect").exit_code == 4
    assert run_cli("deps", "--format", "xml").exit_code == 4


def test_discovery_skips_virtualenvs_and_reads_nested(project, tmp_path: Path) -> None:
    project(".venv/lib/requirements.txt", "colourama\n")
    project("services/api/requirements.txt", "reqeusts==1 --hash=sha256:aa\n")
    project("requirements/prod.txt", "rich\n")
    result = run_cli("deps", str(tmp_path), "--offline", "--format", "json")
    paths = {f["path"] for f in flat(result)}
    assert paths == {"services/api/requirements.txt", "requirements/prod.txt"}
