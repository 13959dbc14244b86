"""Inline suppressions: ``# mlwarden: ignore[RULE, RULE] reason``.

A suppression must name its rules and give a reason; one that does not is itself a finding
and suppresses nothing. It covers findings whose node spans the comment's line.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

from mlwarden.lint import rules as R
from mlwarden.lint.analyzer import RawFinding

_DIRECTIVE = re.compile(r"#\s*mlwarden\s*:\s*ignore\b(?P<bracket>\[(?P<rules>[^\]]*)\])?"
                        r"(?P<reason>.*)$", re.I)
# A reason is words, not punctuation: "-- trusted internal checkpoint".
_REASON = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class Suppression:
    line: int
    rules: frozenset[str]


def parse(source: str) -> tuple[list[Suppression], list[RawFinding]]:
    """Valid suppressions, and findings for the invalid ones."""
    valid: list[Suppression] = []
    problems: list[RawFinding] = []
    if "mlwarden" not in source.lower():
        return valid, problems  # tokenizing is the costliest step; skip it when pointless
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return valid, problems  # the file parsed with ast, so this is not expected
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = _DIRECTIVE.search(tok.string)
        if m is None:
            continue
        line, col = tok.start[0], tok.start[1] + 1
        if m.group("bracket") is None:
            problems.append(RawFinding(R.SUPPRESSION_INVALID,
                                       "suppression does not name its rules: write ignore[RULE]",
                                       line, col, line))
            continue
        ids = [r.strip() for r in (m.group("rules") or "").split(",") if r.strip()]
        unknown = [r for r in ids if r not in R.LINT_RULES]
        known = frozenset(r for r in ids if r in R.LINT_RULES)
        if not ids or unknown:
            what = f"unknown rule {', '.join(unknown)}" if unknown else "empty rule list"
            problems.append(RawFinding(R.SUPPRESSION_INVALID, f"suppression names {what}",
                                       line, col, line))
        if not _REASON.search(m.group("reason")):
            problems.append(RawFinding(
                R.SUPPRESSION_NO_REASON,
                f"suppression of {', '.join(sorted(known)) or 'nothing'} gives no reason, "
                "so it is not applied", line, col, line))
            continue
        if known:
            valid.append(Suppression(line, known))
    return valid, problems


# Rules about the suppressions themselves cannot be suppressed.
_UNSUPPRESSIBLE = {R.SUPPRESSION_NO_REASON.id, R.SUPPRESSION_INVALID.id, R.UNPARSABLE.id}


def apply(findings: list[RawFinding], suppressions: list[Suppression]) -> list[RawFinding]:
    by_line: dict[int, set[str]] = {}
    for s in suppressions:
        by_line.setdefault(s.line, set()).update(s.rules)
    out = []
    for f in findings:
        covered = f.rule.id not in _UNSUPPRESSIBLE and any(
            f.rule.id in by_line.get(line, ()) for line in range(f.line, f.end_line + 1))
        if not covered:
            out.append(f)
    return out
