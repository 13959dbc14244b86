"""Rule catalogue. Every finding cites a rule, and each rule fixes its verdict and severity,
so the verdict policy is documented in one place (``mlwarden rules`` prints it)."""

from __future__ import annotations

from dataclasses import dataclass

from mlwarden.report.model import Finding, Location, Severity, Verdict


@dataclass(frozen=True)
class Rule:
    id: str
    verdict: Verdict
    severity: Severity
    title: str
    help: str = ""

    def finding(self, message: str, location: Location | None = None) -> Finding:
        return Finding(self.id, self.severity, self.verdict, message, location)


RULES: dict[str, Rule] = {}


def rule(
    id: str, verdict: Verdict, severity: Severity, title: str, help: str = ""
) -> Rule:
    """Declare a rule at import time of the module that emits it."""
    existing = RULES.get(id)
    new = Rule(id, verdict, severity, title, help)
    if existing is not None and existing != new:
        raise ValueError(f"rule {id} declared twice with different definitions")
    RULES[id] = new
    return new
