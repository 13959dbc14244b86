"""Inline suppressions need a rule list and a reason."""

from __future__ import annotations

from lint.lint_support import hits


def test_suppression_with_reason_suppresses_only_its_rule() -> None:
    src = ("import torch\n"
           "torch.load('a')  # mlwarden: ignore[lint-torch-load-implicit] our own checkpoint\n"
           "torch.load('b')  # mlwarden: ignore[lint-pickle-load] wrong rule named\n")
    assert hits(src) == [("lint-torch-load-implicit", 3)]


def test_suppression_without_reason_is_a_finding_and_does_not_suppress() -> None:
    src = "import torch\ntorch.load('a')  # mlwarden: ignore[lint-torch-load-implicit]\n"
    assert sorted(hits(src)) == [("lint-suppression-without-reason", 2),
                                 ("lint-torch-load-implicit", 2)]


def test_punctuation_is_not_a_reason() -> None:
    src = "import torch\ntorch.load('a')  # mlwarden: ignore[lint-torch-load-implicit] --\n"
    assert ("lint-torch-load-implicit", 2) in hits(src)


def test_multi_line_call_and_several_rules() -> None:
    src = ("import torch, dill\ntorch.load(\n    'a',\n    pickle_module=dill,\n"
           ")  # mlwarden: ignore[lint-torch-load-implicit, lint-pickle-load] vendored fixture\n")
    assert hits(src) == []


def test_malformed_and_unknown_rule() -> None:
    src = ("import torch\ntorch.load('a')  # mlwarden: ignore because\n"
           "x = 1  # mlwarden: ignore[lint-nope] reason here\n")
    got = hits(src)
    assert ("lint-torch-load-implicit", 2) in got
    assert ("lint-suppression-invalid", 2) in got
    assert ("lint-suppression-invalid", 3) in got


def test_directive_inside_a_string_is_not_a_comment() -> None:
    src = ("import torch\ntorch.load('a', s='# mlwarden: ignore[lint-torch-load-implicit] x')\n")
    assert hits(src) == [("lint-torch-load-implicit", 2)]
