"""Lint files into the shared result model: one FileResult per file, one Report per run."""

from __future__ import annotations

import ast
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from mlwarden.lint import rules as R
from mlwarden.lint import suppress
from mlwarden.lint.analyzer import Analyzer, RawFinding
from mlwarden.lint.sources import SourceText, Unreadable, discover, read
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict


@dataclass(frozen=True)
class Selection:
    """Which rules to report. Empty ``select`` means all; unparsable files always report."""

    select: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()

    def wants(self, rule_id: str) -> bool:
        if rule_id == R.UNPARSABLE.id:
            return True
        return (not self.select or rule_id in self.select) and rule_id not in self.ignore


def expand_rule_patterns(patterns: Iterable[str]) -> frozenset[str]:
    """Rule ids from exact ids or prefixes (``lint-torch`` selects both torch rules)."""
    out: set[str] = set()
    for p in patterns:
        matched = {rid for rid in R.LINT_RULES if rid == p or rid.startswith(p)}
        if not p or not matched:
            raise ValueError(f"unknown lint rule {p!r}")
        out |= matched
    return frozenset(out)


def lint_text(text: str) -> list[RawFinding]:
    """Findings for one Python source text, suppressions applied. Raises Unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours
            tree = ast.parse(text)
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        raise Unreadable(f"syntax error{where}: {exc.msg}") from exc
    except (ValueError, MemoryError, RecursionError) as exc:
        raise Unreadable(f"cannot parse: {type(exc).__name__}") from exc
    try:
        findings = Analyzer().run(tree)
    except RecursionError as exc:
        raise Unreadable("code nested too deeply to analyse") from exc
    valid, problems = suppress.parse(text)
    return suppress.apply(findings, valid) + problems


def lint_file(path: str, selection: Selection = Selection()) -> FileResult:
    fmt, size, src = "python", None, None
    try:
        src = read(path)
        fmt, size = src.format, src.size
        raw = sorted(lint_text(src.text), key=lambda f: (f.line, f.col))
        findings = [_to_finding(f, src) for f in raw if selection.wants(f.rule.id)]
    except Unreadable as exc:
        line, detail = _line_of(exc), None
        if line is not None and src is not None:
            line, detail = src.locate(line)
        findings = [R.UNPARSABLE.finding(str(exc), Location(line=line, detail=detail))]
    return FileResult(path, fmt, Verdict.worst(f.verdict for f in findings), size, None,
                      tuple(findings))


def _line_of(exc: Unreadable) -> int | None:
    cause = exc.__cause__
    return cause.lineno if isinstance(cause, SyntaxError) and cause.lineno else None


def _to_finding(f: RawFinding, src: SourceText) -> Finding:
    line, detail = src.locate(f.line)
    return f.rule.finding(f.message, Location(line=line, column=f.col, detail=detail))


def lint_paths(paths: Iterable[str], selection: Selection = Selection()) -> Report:
    """Lint files and directories. Raises sources.InputError for a missing path."""
    start = time.monotonic()
    files = tuple(lint_file(p, selection) for p in discover(list(paths)))
    return Report("lint", files, time.monotonic() - start)
