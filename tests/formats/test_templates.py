"""Chat templates: real templates of popular models are clean; every escape shape is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from formats.fmt_helpers import LOC, new_ctx, rules_of
from mlwarden.report.model import Verdict
from mlwarden.scan.templates import analyze_template

# Real chat templates (Command-R is abridged: its long prose preamble is cut).
REAL = sorted((Path(__file__).parent / "chat_templates").glob("*.jinja"))


def analyse(text: str):  # type: ignore[no-untyped-def]
    ctx = new_ctx()
    analyze_template(text, ctx, LOC)
    return ctx


def test_fixture_set_is_complete() -> None:
    names = " ".join(p.name for p in REAL)
    for family in ("Llama-2", "Llama-3", "Llama-3.2", "Mistral-7B", "Mistral-Nemo", "Qwen2.5",
                   "gemma-2", "Phi-3.5", "Phi-4", "zephyr", "DeepSeek", "command-r", "chatml"):
        assert family in names


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_popular_templates_clean(path: Path) -> None:
    ctx = analyse(path.read_text(encoding="utf-8"))
    assert ctx.verdict is Verdict.CLEAN, [(f.rule, f.message) for f in ctx.findings]
    assert rules_of(ctx) == {"template-analysed"}


def test_transformers_syntax_accepted() -> None:
    """{% generation %}, loop controls and `do` parse like in transformers/minja."""
    ctx = analyse("{% for m in messages %}{% if m.role == 'x' %}{% continue %}{% endif %}"
                  "{% generation %}{{ m.content }}{% endgeneration %}{% break %}{% endfor %}"
                  "{% set ns = namespace(items=[]) %}{% do ns.items.append(1) %}")
    assert ctx.verdict is Verdict.CLEAN


MALICIOUS = {
    # CVE-2024-34359 public proof of concept shape
    "cve-2024-34359": "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in "
                      "x.__name__ %}{{ x()._module.__builtins__['__import__']('os')"
                      ".popen('touch /tmp/m') }}{% endif %}{% endfor %}",
    "template-reference": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "lipsum-globals": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "namespace-init": "{% set ns = namespace() %}{{ ns.__init__.__globals__ }}",
    "cycler-init": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "joiner-item": "{{ joiner['__init__']['__globals__'] }}",
    "attr-literal": "{{ ()|attr('__class__')|attr('__base__') }}",
    "attr-concat": "{{ ()|attr('__cla' ~ 'ss__') }}",
    "attr-add": "{{ ()|attr('__cla' + 'ss__') }}",
    "attr-format": "{{ x|attr('%c%cclass%c%c'|format(95, 95, 95, 95)) }}",
    "attr-join": "{{ x|attr(['__', 'class', '__']|join) }}",
    "attr-replace": "{{ x|attr('XXclassXX'|replace('X', '_')) }}",
    "attr-reverse": "{{ x|attr('__ssalc__'|reverse) }}",
    "attr-mul": "{{ x|attr('_' * 2 ~ 'globals' ~ '_' * 2) }}",
    "item-set-var": "{% set a = '__gl' %}{% set b = a ~ 'obals__' %}{{ lipsum[b] }}",
    "item-set-block": "{% set a %}__globals__{% endset %}{{ lipsum[a] }}",
    "dict-keyword": "{{ ()|attr(dict(__class__=1)|list|first) }}",
    "map-attr": "{{ [x]|map('attr', '__class__')|list }}",
    "map-attribute": "{{ [x]|map(attribute='__class__.__mro__')|list }}",
    "str-format-field": "{{ '{0.__class__.__init__}'.format(x) }}",
    "method-format": "{{ x|attr('{}{}{}'.format('__', 'class', '__')) }}",
    "builtins-name": "{{ __builtins__ }}",
    "func-globals": "{{ lipsum.func_globals }}",
    "slice": "{{ x|attr('..__class__..'[2:-2]) }}",
}


@pytest.mark.parametrize("text", MALICIOUS.values(), ids=MALICIOUS.keys())
def test_escape_shapes_malicious(text: str) -> None:
    ctx = analyse(text)
    assert ctx.verdict is Verdict.MALICIOUS, [(f.rule, f.message) for f in ctx.findings]
    assert "template-python-internals" in rules_of(ctx)
    assert all(f.location is not None and "template line" in str(f.location)
               for f in ctx.findings)


SUSPICIOUS = {
    "attr-plain": ("{{ x|attr('content') }}", "template-attr-filter"),
    "attr-dynamic": ("{{ x|attr(messages[0].content) }}", "template-dynamic-attribute"),
    "item-built": ("{{ x['a' ~ messages[0].content] }}", "template-dynamic-attribute"),
    "gadget-attr": ("{{ cycler.next }}", "template-gadget-access"),
    "self-attr": ("{{ self.x }}", "template-gadget-access"),
    "private": ("{{ message._secret }}", "template-private-attribute"),
    "include": ("{% include 'other.j2' %}", "template-include"),
}


@pytest.mark.parametrize(("text", "rule"), SUSPICIOUS.values(), ids=SUSPICIOUS.keys())
def test_suspicious_shapes(text: str, rule: str) -> None:
    ctx = analyse(text)
    assert ctx.verdict is Verdict.SUSPICIOUS, [(f.rule, f.message) for f in ctx.findings]
    assert rule in rules_of(ctx)


@pytest.mark.parametrize("text", [
    "{% set ns = namespace(found=false) %}{% set ns.found = true %}{{ ns.found }}",
    "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}",
    "{{ messages|map(attribute='content')|join('\\n') }}",
    "{{ 'a_b' ~ messages[0]['content'] }}",
    "{{ '__init__ is a Python method' if false }}",
])
def test_ordinary_constructs_clean(text: str) -> None:
    ctx = analyse(text)
    # The only whole-string dunder check is for exact names: prose stays clean.
    assert ctx.verdict is Verdict.CLEAN, [(f.rule, f.message) for f in ctx.findings]


def test_syntax_error_unscannable() -> None:
    ctx = analyse("{% for m in messages %}{{ m }")
    assert ctx.verdict is Verdict.UNSCANNABLE
    assert rules_of(ctx) == {"template-syntax-error"}
    assert "template line 1" in ctx.findings[0].message


def test_bomb_bounded() -> None:
    """Folding never materialises huge strings, and deep nesting is not a crash."""
    ctx = analyse("{{ x|attr('_' * 10000000000) }}")
    assert ctx.verdict is Verdict.SUSPICIOUS
    ctx = analyse("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}")
    assert ctx.verdict in (Verdict.CLEAN, Verdict.UNSCANNABLE)


def test_oversized_template_is_limited() -> None:
    ctx = analyse("x" * (5 * 1024 * 1024))
    assert rules_of(ctx) == {"limit-exceeded"}
