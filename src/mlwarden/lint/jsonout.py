"""The lint JSON shape from issue 6: ``{"findings": [{path, line, col, rule, severity,
message}]}``, plus ``fix`` per finding and a ``summary``. Built from the shared Report."""

from __future__ import annotations

import json
from collections import Counter

import mlwarden
from mlwarden.report.model import Report
from mlwarden.report.rules import RULES


def to_lint_json(report: Report) -> str:
    findings: list[dict[str, object]] = []
    for fr in report.files:
        for f in fr.findings:
            loc = f.location
            entry: dict[str, object] = {
                "path": fr.path,
                "line": loc.line if loc else None,
                "col": loc.column if loc else None,
                "rule": f.rule,
                "severity": f.severity.value,
                "message": f.message,
                "fix": RULES[f.rule].help if f.rule in RULES else "",
            }
            if loc is not None and loc.detail:
                entry["cell"] = loc.detail  # notebooks: line and col are within this cell
            findings.append(entry)
    doc = {
        "findings": findings,
        "summary": {
            "files": len(report.files),
            "findings": len(findings),
            "by_severity": dict(Counter(str(f["severity"]) for f in findings)),
            "by_rule": dict(sorted(Counter(str(f["rule"]) for f in findings).items())),
            "unparsable": sum(1 for fr in report.files if fr.verdict.value == "unscannable"),
            "elapsed_seconds": round(report.elapsed_seconds, 3),
        },
        "tool": {"name": "mlwarden", "version": mlwarden.__version__},
    }
    return json.dumps(doc, indent=2) + "\n"
