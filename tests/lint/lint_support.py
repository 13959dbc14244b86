"""Helpers for the lint tests: lint a snippet and get (rule, line) pairs."""

from __future__ import annotations

import textwrap

from mlwarden.lint.engine import lint_text


def hits(src: str) -> list[tuple[str, int]]:
    return [(f.rule.id, f.line) for f in lint_text(textwrap.dedent(src))]


def rules_of(src: str) -> set[str]:
    return {r for r, _ in hits(src)}
