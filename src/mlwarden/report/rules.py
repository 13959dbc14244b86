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


def all_rules() -> list[Rule]:
    """Every rule of every scanner module, imported on demand (keeps start-up fast)."""
    from mlwarden.scan.readers import import_all_readers

    import_all_readers()
    import mlwarden.lint.rules  # noqa: F401  (lint rules are declared outside the scanner)
    from mlwarden.airlock import rules as _airlock_rules  # noqa: F401  (airlock, verify)
    from mlwarden.deps import doctor as _doctor  # noqa: F401  (deps/doctor rules)
    from mlwarden.deps import rules as _deps_rules  # noqa: F401
    from mlwarden.deps.inspect import rules as _pkg_rules  # noqa: F401  (deps inspect)
    from mlwarden.guard import rules as _guard_rules  # noqa: F401  (load guard)
    from mlwarden.memory import rules as _memory_rules  # noqa: F401  (agent-memory rules)
    from mlwarden.policy import rules as _policy_rules  # noqa: F401  (airlock policy)
    return sorted(RULES.values(), key=lambda r: r.id)


def rules_markdown() -> str:
    """The catalogue as a Markdown table (the README's rules section)."""
    lines = ["| rule | verdict | severity | meaning |", "|---|---|---|---|"]
    for r in all_rules():
        text = f"{r.title}. {r.help}".strip().replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r.id}` | {r.verdict.value} | {r.severity.value} | {text} |")
    return "\n".join(lines)
