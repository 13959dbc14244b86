"""Findings, verdicts and the renderers every command shares."""

from mlwarden.report.model import (
    FileResult,
    Finding,
    Location,
    Report,
    Severity,
    Verdict,
    exit_code,
)

__all__ = ["FileResult", "Finding", "Location", "Report", "Severity", "Verdict", "exit_code"]
