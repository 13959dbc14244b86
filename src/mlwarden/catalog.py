"""The whole rule catalogue: imports every module that declares rules.

It sits above every feature package (only the CLI and tools import it), so declaring a rule
in ``report.rules`` never makes ``report`` depend on the packages that use it."""

from __future__ import annotations

from mlwarden.report.rules import RULES, Rule


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
    from mlwarden.index import rules as _index_rules  # noqa: F401  (package index)
    from mlwarden.memory import rules as _memory_rules  # noqa: F401  (agent-memory rules)
    from mlwarden.policy import rules as _policy_rules  # noqa: F401  (airlock policy)
    from mlwarden.scan.sources import scanning as _remote  # noqa: F401  (remote scans)
    return sorted(RULES.values(), key=lambda r: r.id)


def rules_markdown() -> str:
    """The catalogue as a Markdown table (the README's rules section)."""
    lines = ["| rule | verdict | severity | meaning |", "|---|---|---|---|"]
    for r in all_rules():
        text = f"{r.title}. {r.help}".strip().replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r.id}` | {r.verdict.value} | {r.severity.value} | {text} |")
    return "\n".join(lines)
