"""Repositories with custom code through scan_paths and the CLI (JSON and SARIF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from corpus import repos
from mlwarden.cli.main import cli
from mlwarden.report.model import Report, Verdict
from mlwarden.scan.engine import scan_paths


def by_path(report: Report, root: Path) -> dict[str, object]:
    return {str(Path(f.path).relative_to(root)) if f.path != str(root) else ".": f
            for f in report.files}


def findings(report: Report, rel: str, root: Path) -> list:
    for f in report.files:
        if f.path == str(root / rel):
            return list(f.findings)
    raise AssertionError(f"{rel} not in report")


@pytest.mark.parametrize("builder", [repos.benign_phi_repo, repos.benign_falcon_repo])
def test_benign_repositories_are_clean(tmp_path: Path, builder) -> None:
    root = builder(tmp_path / "repo")
    report = scan_paths([str(root)])
    bad = [(f.path, [x.rule for x in f.findings if x.verdict is not Verdict.CLEAN])
           for f in report.files if f.verdict is not Verdict.CLEAN]
    assert bad == []
    py = [f for f in report.files if f.path.endswith(".py")]
    assert py and all(f.format == "python" for f in py)


def test_benign_summary_lists_remote_code(tmp_path: Path) -> None:
    root = repos.benign_phi_repo(tmp_path / "repo")
    report = scan_paths([str(root)])
    (summary,) = [f for f in report.files if f.path == str(root)]
    (finding,) = [x for x in summary.findings if x.rule == "repo-remote-code"]
    for name in ("modeling_mixformer_sequential.py", "configuration_mixformer_sequential.py",
                 "tokenization_demo.py", "hubconf.py"):
        assert name in finding.message
    assert "(clean;" in finding.message
    cfg = findings(report, "config.json", root)
    assert any(x.rule == "config-auto-map" and "modeling_mixformer_sequential.py" in x.message
               for x in cfg)


@pytest.mark.parametrize("name", sorted(repos.MALICIOUS))
def test_malicious_repositories_detected_with_lines(tmp_path: Path, marker: Path,
                                                    name: str) -> None:
    builder, expected = repos.MALICIOUS[name]
    root = tmp_path / "repo"
    if name == "hubconf":
        repos.benign_phi_repo(root)
    lines = builder(root, marker)
    report = scan_paths([str(root)])
    assert report.verdict is Verdict.MALICIOUS
    for tag, rule_id in expected.items():
        rel, line = lines[tag]
        got = [(x.rule, x.location.line) for x in findings(report, rel, root)
               if x.location is not None]
        assert (rule_id, line) in got, (tag, got)
    assert not marker.exists()


def test_function_only_exfiltration_is_suspicious(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    lines = repos.in_function_exfiltration(root)
    report = scan_paths([str(root)])
    rel, line = lines["post"]
    fs = findings(report, rel, root)
    assert ("code-possible-exfiltration", line) in [(x.rule, x.location.line) for x in fs]
    assert report.verdict is Verdict.SUSPICIOUS


def test_cross_repo_auto_map_and_missing_code(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"auto_map": {
        "AutoConfig": "configuration_x.XConfig",
        "AutoModel": "someone/other-repo--modeling_x.XModel",
        "AutoModelForCausalLM": "../../etc.Evil",
    }}))
    report = scan_paths([str(root)])
    rules = {x.rule: x for x in findings(report, "config.json", root)}
    assert "someone/other-repo" in rules["config-cross-repo-code"].message
    assert "config-bad-code-reference" in rules
    assert "configuration_x.py" in rules["repo-missing-code"].message
    assert report.verdict is Verdict.UNSCANNABLE


def test_relative_import_closure_and_missing_module(tmp_path: Path) -> None:
    root = repos.benign_falcon_repo(tmp_path / "repo")
    (root / "modelling_RW.py").write_text(
        (root / "modelling_RW.py").read_text() + "\nfrom .kernels_rw import fused_add\n")
    report = scan_paths([str(root)])
    fs = findings(report, "modelling_RW.py", root)
    assert any(x.rule == "repo-missing-code" and "kernels_rw.py" in x.message for x in fs)
    (root / "kernels_rw.py").write_text("import subprocess\n\ndef fused_add(a, b):\n"
                                        "    subprocess.run(['nvcc', '--version'])\n"
                                        "    return a + b\n")
    report = scan_paths([str(root)])
    (summary,) = [f for f in report.files if f.path == str(root)]
    msg = summary.findings[0].message
    assert "kernels_rw.py (suspicious; imported by modelling_RW.py)" in msg


def test_malformed_config_is_unscannable(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "config.json").write_text('{"auto_map": {"AutoModel": "m.M"},}')
    (root / "tokenizer_config.json").write_text('{"chat_template": "a", "chat_template": "b"}')
    (root / "notes.txt").write_text("just text\n")
    report = scan_paths([str(root)])
    cfg = findings(report, "config.json", root)
    assert [x.rule for x in cfg] == ["config-invalid-json"]
    assert "line 1 column" in cfg[0].message
    tok = findings(report, "tokenizer_config.json", root)
    assert "config-duplicate-key" in [x.rule for x in tok]
    assert [x.rule for x in findings(report, "notes.txt", root)] == ["not-analysed"]


def test_syntax_error_is_unscannable_with_location(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "modeling_bad.py").write_text("import torch\n\ndef f(:\n    pass\n")
    report = scan_paths([str(root)])
    (f,) = findings(report, "modeling_bad.py", root)
    assert f.rule == "code-unparseable" and f.location.line == 3
    assert report.verdict is Verdict.UNSCANNABLE


def test_chat_templates_are_analysed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    repos.evil_template(root)
    (root / "chat_template.jinja").write_text(repos.LLAMA2_TEMPLATE)
    report = scan_paths([str(root)])
    tok = findings(report, "tokenizer_config.json", root)
    assert any(x.rule.startswith("template-") and x.verdict is Verdict.MALICIOUS for x in tok)
    jinja = next(f for f in report.files if f.path.endswith("chat_template.jinja"))
    assert jinja.verdict is Verdict.CLEAN


def test_cli_json_and_sarif(tmp_path: Path, marker: Path) -> None:
    root = tmp_path / "repo"
    lines = repos.evil_base64_exec(root, marker)
    runner = CliRunner()
    res = runner.invoke(cli, ["scan", "--format", "json", str(root)])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    rel, line = lines["b64exec"]
    (entry,) = [f for f in doc["files"] if f["path"].endswith(rel)]
    assert entry["verdict"] == "malicious" and entry["format"] == "python"
    assert any(x["rule"] == "code-exec-payload" and f"line {line}" in x["location"]
               for x in entry["findings"])

    res = runner.invoke(cli, ["scan", "--format", "sarif", str(root)])
    assert res.exit_code == 1
    sarif = json.loads(res.output)
    results = sarif["runs"][0]["results"]
    py = [r for r in results if r["locations"][0]["physicalLocation"]["artifactLocation"]
          ["uri"].endswith(".py")]
    assert py and all("startLine" in r["locations"][0]["physicalLocation"]["region"]
                      for r in py)
    hit = [r for r in py if r["ruleId"] == "code-exec-payload"]
    assert hit[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == line


def test_cli_benign_exit_zero(tmp_path: Path) -> None:
    root = repos.benign_phi_repo(tmp_path / "repo")
    res = CliRunner().invoke(cli, ["scan", "--format", "json", str(root)])
    assert res.exit_code == 0, res.output
