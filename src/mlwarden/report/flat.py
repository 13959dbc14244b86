"""The flat findings JSON of issue 6 (``{"findings": [{path, line, col, rule, severity,
message}]}``), for commands whose results are findings in text files (lint, deps, doctor).
Extra keys (verdict, fix, detail, cell) only add to that shape."""

from __future__ import annotations

import json
from collections import Counter

import mlwarden
from mlwarden.report.model import Report
from mlwarden.report.rules import RULES


def to_flat_json(report: Report) -> str:
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
                "verdict": f.verdict.value,
                "fix": RULES[f.rule].help if f.rule in RULES else "",
            }
            if loc is not None and (loc.detail or loc.member):
                entry["detail"] = ", ".join(p for p in (loc.member, loc.detail) if p)
                if loc.detail and loc.detail.startswith("cell "):
                    entry["cell"] = loc.detail  # notebooks: line and col are within this cell
            findings.append(entry)
    doc: dict[str, object] = {
        "findings": findings,
        "summary": {
            **dict(report.summary()),
            "by_severity": dict(Counter(str(f["severity"]) for f in findings)),
            "by_rule": dict(sorted(Counter(str(f["rule"]) for f in findings).items())),
        },
        "command": report.command,
        "tool": {"name": "mlwarden", "version": mlwarden.__version__},
        **({"meta": report.meta} if report.meta else {}),
    }
    return json.dumps(doc, indent=2, default=str) + "\n"
