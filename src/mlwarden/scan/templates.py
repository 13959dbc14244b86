"""Static analysis of Jinja2 chat templates (GGUF ``tokenizer.chat_template*``, Hugging Face
``tokenizer_config.json`` ``chat_template`` and ``chat_template.jinja``).

Loaders render these templates; an unsandboxed renderer turned them into an RCE channel
(llama-cpp-python CVE-2024-34359). We only *parse* with Jinja2's own parser (never compile
or render) and walk the AST for the shapes every known sandbox escape needs: reaching
Python internals (``__class__``, ``__globals__``, ``_TemplateReference__context``, frame and
code attributes), directly or through names assembled from string pieces, ``|attr()``, and
attribute access on Jinja's gadget globals (``cycler``, ``lipsum``, ``self``, ...).

Policy (documented in docs/formats.md):
- internals reached by name, literal or constant-folded -> malicious;
- ``|attr()``, attribute names computed at render time, attribute access *on* a gadget
  global, private ``_x`` attributes, ``include``/``import``/``extends`` -> suspicious;
- calling a gadget (``namespace(...)``, ``range(...)``, ``cycler(...)``) is ordinary and
  is not reported by itself;
- a template that does not parse -> unscannable.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import Rule, rule
from mlwarden.scan.context import ScanContext

MAX_TEMPLATE_CHARS = 4 * 1024 * 1024  # real chat templates are < 64 KiB
MAX_FOLD_CHARS = 4096  # constant folding never builds longer strings
MAX_FOLD_DEPTH = 64
MAX_NODES = 500_000
# Jinja parses ~30k tokens a second; popular chat templates have < 2,000. Counting tokens
# (with a regex, far cheaper than Jinja's lexer) before parsing keeps a crafted template,
# or a file holding thousands of templates, from costing minutes.
MAX_TEMPLATE_TOKENS = 50_000
MAX_FILE_TEMPLATE_TOKENS = 100_000
MAX_FILE_TEMPLATES = 64  # tokenizer configs name a handful (default, tool_use, rag)


@dataclass
class TemplateBudget:
    """What is left for all the templates of one file (a GGUF or a tokenizer_config.json
    may hold any number of them)."""

    tokens: int = MAX_FILE_TEMPLATE_TOKENS
    templates: int = MAX_FILE_TEMPLATES
    reported: bool = False

TEMPLATE_SYNTAX = rule(
    "template-syntax-error",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Chat template does not parse",
    "Jinja2 cannot parse the template, so it was not analysed. transformers and llama.cpp "
    "would fail on it too, but a different renderer might not.",
)
TEMPLATE_INTERNALS = rule(
    "template-python-internals",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "Chat template reaches Python internals (sandbox escape)",
    "Dunder attributes (__class__, __globals__, __subclasses__, __builtins__, __import__, "
    "__mro__, __init__ ...), name-mangled privates (_TemplateReference__context) and "
    "frame/code attributes (f_globals, gi_frame, mro ...) have no use in rendering a "
    "conversation; they are how server-side template injection reaches os.system "
    "(CVE-2024-34359). Names spelled literally and names assembled from constant pieces "
    "(~, +, join, replace, reverse, format, dict(__x__=1)) are both caught.",
)
TEMPLATE_ATTR_FILTER = rule(
    "template-attr-filter",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Chat template uses the |attr() filter",
    "Chat templates read fields with .name or ['name']; |attr() exists in payloads to get "
    "past filters that look for dotted access. Review the attribute it reads.",
)
TEMPLATE_DYNAMIC = rule(
    "template-dynamic-attribute",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Chat template looks up an attribute whose name is built at render time",
    "An attribute or item name assembled from strings that cannot be resolved statically "
    "(variables, filters) can spell an internal name only at render time.",
)
TEMPLATE_GADGET = rule(
    "template-gadget-access",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Chat template reads attributes of a Jinja gadget global",
    "cycler, joiner, lipsum, namespace, self, range, dict, request, config, url_for, ... "
    "are the usual first step of a sandbox escape when their attributes are read (the "
    "class itself, not an instance a template created). Calling namespace() or range() "
    "is ordinary and is not reported.",
)
TEMPLATE_PRIVATE = rule(
    "template-private-attribute",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Chat template reads a private (_underscore) attribute",
    "Jinja's sandbox refuses underscore attributes, so a chat template never needs them.",
)
TEMPLATE_INCLUDE = rule(
    "template-include",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Chat template includes, imports or extends another template",
    "Chat templates are self-contained; loading other templates can read files from the "
    "renderer's template path.",
)
TEMPLATE_OK = rule(
    "template-analysed",
    Verdict.CLEAN,
    Severity.INFO,
    "Chat template parsed and analysed",
    "The template parsed and none of the sandbox-escape shapes were found.",
)

# Attribute names that reach interpreter internals without dunders.
_INTERNAL_ATTRS = frozenset({
    "mro", "func_globals", "func_code", "func_closure", "f_globals", "f_locals",
    "f_builtins", "f_back", "f_code", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "tb_frame", "tb_next", "co_code", "im_func", "im_self",
    "im_class",
})
_DUNDER = re.compile(r"^__\w+__$")
_MANGLED = re.compile(r"^_[A-Za-z][A-Za-z0-9]*__\w+$")
# Inside longer strings ("{0.__class__}", "a.__init__.b"), only well-known internals reached
# through "." or "[" count, so prose that mentions a dunder is not malicious by itself.
_KNOWN_INTERNALS = re.compile(
    r"(?<=[.\[])__(?:class|globals|subclasses|builtins|import|mro|base|bases|init|getattribute|"
    r"dict|code|closure|func|self|reduce|reduce_ex|loader|spec|module|getitem|"
    r"call|new|name|qualname)__|_TemplateReference__context|\bf_globals\b|\bgi_frame\b|"
    r"\bfunc_globals\b"
)
GADGETS = frozenset({
    "cycler", "joiner", "lipsum", "namespace", "self", "range", "dict", "request",
    "config", "url_for", "get_flashed_messages", "g", "session", "environment",
    "context", "loop_context",
})
# Filters that take an attribute path (possibly dotted) by keyword or first argument.
_ATTRIBUTE_FILTERS = frozenset({
    "map", "sort", "groupby", "sum", "min", "max", "unique", "selectattr", "rejectattr",
    "dictsort",
})


class _GenerationTag(Extension):
    """transformers' ``{% generation %}...{% endgeneration %}`` (AssistantTracker): parse only."""

    tags = {"generation"}  # noqa: RUF012 (jinja2's own declaration)

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _environment() -> jinja2.Environment:
    # Same syntax as transformers (loopcontrols, generation) plus `do`, which some
    # llama.cpp/minja templates use. The environment only parses.
    return jinja2.Environment(
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag],
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV: jinja2.Environment | None = None


class _Unknown:
    """Value that cannot be known statically."""


UNKNOWN = _Unknown()
Folded = object


def analyze_template(source_text: str, ctx: ScanContext, location: Location,
                     budget: TemplateBudget | None = None) -> None:
    """Parse ``source_text`` as a Jinja2 template (never render) and report escape shapes.

    ``budget`` is shared by the templates of one file; without it the template has the
    per-template bound only.
    """
    global _ENV
    if len(source_text) > MAX_TEMPLATE_CHARS:
        ctx.limit(
            f"chat template of {len(source_text)} characters exceeds the "
            f"{MAX_TEMPLATE_CHARS}-character bound; not analysed",
            location,
        )
        return
    if _ENV is None:
        _ENV = _environment()
    if budget is not None:
        budget.templates -= 1
        if budget.templates < 0:
            if not budget.reported:
                budget.reported = True
                ctx.limit(f"more than {MAX_FILE_TEMPLATES} chat templates in this file; the "
                          "rest were not analysed", location)
            return
    allowed = MAX_TEMPLATE_TOKENS if budget is None else min(MAX_TEMPLATE_TOKENS, budget.tokens)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jinja's escape-sequence DeprecationWarnings
            tokens = _count_tokens(source_text, allowed)
            if budget is not None:
                budget.tokens -= min(tokens, allowed)
            if tokens > allowed:
                _over_budget(ctx, location, budget, allowed)
                return
            tree = _ENV.parse(source_text)
    except jinja2.TemplateSyntaxError as exc:
        ctx.report(
            TEMPLATE_SYNTAX,
            f"chat template does not parse: {exc.message} (template line {exc.lineno})",
            _at(location, exc.lineno),
        )
        return
    except RecursionError:
        ctx.report(TEMPLATE_SYNTAX, "chat template nests too deeply to parse", location)
        return
    before = len(ctx.findings)
    _Analyser(ctx, location, tree).run()
    if len(ctx.findings) == before:
        ctx.report(
            TEMPLATE_OK,
            "chat template parsed; no sandbox-escape pattern found",
            location,
        )


# Expression and statement blocks (an unterminated one runs to the end), and the words and
# symbols inside them: a C-speed over-estimate of what Jinja's lexer would produce.
_BLOCKS = re.compile(r"\{\{.*?(?:\}\}|\Z)|\{%.*?(?:%\}|\Z)", re.S)
_WORDS = re.compile(r"\w+|[^\w\s]")


def _count_tokens(text: str, bound: int) -> int:
    """Tokens in the blocks of ``text`` (each block of plain text is one more), counting
    no further than just past ``bound``."""
    n = 0
    for m in _BLOCKS.finditer(text):
        n += 1 + _WORDS.subn("", m.group())[1]  # subn counts without match objects
        if n > bound:
            break
    return n


def _over_budget(ctx: ScanContext, location: Location, budget: TemplateBudget | None,
                 allowed: int) -> None:
    if budget is not None and allowed < MAX_TEMPLATE_TOKENS:
        if not budget.reported:
            budget.reported = True
            ctx.limit(f"chat templates of this file exceed {MAX_FILE_TEMPLATE_TOKENS} Jinja "
                      "tokens in total; the rest were not analysed", location)
        return
    ctx.limit(f"chat template of more than {MAX_TEMPLATE_TOKENS} Jinja tokens (popular "
              "templates have < 2,000); not analysed", location)


def _at(location: Location, lineno: int | None) -> Location:
    if not lineno:
        return location
    where = f"template line {lineno}"
    return replace(location, detail=f"{location.detail}, {where}" if location.detail else where)


def is_internal_name(name: str) -> bool:
    """Attribute names that only a sandbox escape needs."""
    return bool(_DUNDER.match(name) or _MANGLED.match(name) or name in _INTERNAL_ATTRS)


class _Analyser:
    def __init__(self, ctx: ScanContext, location: Location, tree: nodes.Template) -> None:
        self.ctx = ctx
        self.location = location
        self.tree = tree
        self.seen: set[tuple[str, str, int]] = set()
        self.constants: dict[str, Folded] = {}

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        self._collect_constants()
        for count, node in enumerate(_walk(self.tree), 1):
            if count > MAX_NODES:
                self.ctx.limit(f"chat template has more than {MAX_NODES} nodes; analysis "
                               "stopped", self.location)
                return
            self._visit(node)

    def _collect_constants(self) -> None:
        """Names assigned exactly once from a constant (``{% set a = "__cla" %}``)."""
        values: dict[str, list[Folded]] = {}
        for node in _walk(self.tree):
            if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                values.setdefault(node.target.name, []).append(self._fold(node.node))
            elif (isinstance(node, nodes.AssignBlock) and isinstance(node.target, nodes.Name)
                  and node.filter is None):
                values.setdefault(node.target.name, []).append(self._fold_body(node.body))
        for name, vals in values.items():
            if len(vals) == 1 and vals[0] is not UNKNOWN:
                self.constants[name] = vals[0]

    def _report(self, r: Rule, key: str, message: str, node: nodes.Node) -> None:
        lineno = getattr(node, "lineno", 0) or 0
        if (r.id, key, lineno) in self.seen:
            return
        self.seen.add((r.id, key, lineno))
        self.ctx.report(r, message, _at(self.location, lineno))

    # ------------------------------------------------------------------ checks
    def _visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr):
            self._check_access(node.attr, node, "attribute")
            self._check_gadget(node.node, node.attr, node)
        elif isinstance(node, nodes.Getitem):
            value = self._fold(node.arg)
            if isinstance(value, str):
                self._check_access(value, node, "item")
                self._check_gadget(node.node, value, node)
            elif value is UNKNOWN and _builds_string(node.arg):
                self._report(TEMPLATE_DYNAMIC, "item", "item name assembled at render time "
                             "cannot be checked statically", node)
        elif isinstance(node, nodes.Filter | nodes.Test):
            self._check_filter(node)
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            if is_internal_name(node.name):
                self._report(TEMPLATE_INTERNALS, node.name,
                             f"reads the Python internal name {node.name!r}", node)
        elif isinstance(node, nodes.Keyword):
            if is_internal_name(node.key):
                self._report(TEMPLATE_INTERNALS, node.key,
                             f"keyword argument {node.key!r} spells a Python internal name "
                             "(dict(__x__=1) trick)", node)
        elif isinstance(node, nodes.Const):
            if isinstance(node.value, str):
                self._check_string(node.value, node, built=False)
        elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            kind = type(node).__name__.lower()
            self._report(TEMPLATE_INCLUDE, kind, f"{kind} of another template", node)
        if isinstance(node, _BUILDERS):
            value = self._fold(node)
            if isinstance(value, str):
                self._check_string(value, node, built=True)
            elif isinstance(value, list | tuple):
                for item in value:
                    if isinstance(item, str):
                        self._check_string(item, node, built=True)

    def _check_string(self, value: str, node: nodes.Node, built: bool) -> None:
        name = value.strip()
        hit = name if is_internal_name(name) else None
        if hit is None:
            m = _KNOWN_INTERNALS.search(value)
            hit = m.group(0) if m else None
        if hit is None:
            return
        how = "assembled from string pieces" if built else "in a string constant"
        self._report(TEMPLATE_INTERNALS, hit, f"Python internal name {hit!r} {how}", node)

    def _check_access(self, name: str, node: nodes.Node, kind: str) -> None:
        for part in name.split("."):
            if is_internal_name(part):
                self._report(TEMPLATE_INTERNALS, part,
                             f"{kind} access to Python internal {part!r}", node)
            elif part.startswith("_"):
                self._report(TEMPLATE_PRIVATE, part, f"{kind} access to private {part!r}", node)

    def _check_gadget(self, target: nodes.Node, name: str, node: nodes.Node) -> None:
        if isinstance(target, nodes.Name) and target.name in GADGETS:
            self._report(TEMPLATE_GADGET, f"{target.name}.{name}",
                         f"reads {name!r} of the gadget global {target.name!r}", node)

    def _check_filter(self, node: nodes.Filter | nodes.Test) -> None:
        name = node.name
        args = list(node.args)
        if name in ("map", "select", "reject") and args:
            # x|map('attr', '__class__') applies the attr filter to every item.
            first = self._fold(args[0])
            if first == "attr":
                name, args = "attr", args[1:]
        if name == "attr" and isinstance(node, nodes.Filter):
            value = self._fold(args[0]) if args else UNKNOWN
            if isinstance(value, str):
                self._check_access(value, node, "|attr()")
                if node.node is not None:
                    self._check_gadget(node.node, value, node)
                self._report(TEMPLATE_ATTR_FILTER, value, f"|attr({value!r})", node)
            else:
                self._report(TEMPLATE_ATTR_FILTER, "?", "|attr() with a name computed at "
                             "render time", node)
                self._report(TEMPLATE_DYNAMIC, "attr", "|attr() name cannot be checked "
                             "statically", node)
            return
        if name in _ATTRIBUTE_FILTERS:
            candidates = [kw.value for kw in node.kwargs if kw.key == "attribute"]
            if name in ("selectattr", "rejectattr", "groupby") and args:
                candidates.append(args[0])
            for cand in candidates:
                value = self._fold(cand)
                if isinstance(value, str):
                    self._check_access(value, node, f"|{name}(attribute=)")
                elif value is UNKNOWN and _builds_string(cand):
                    self._report(TEMPLATE_DYNAMIC, name, f"|{name}() attribute assembled at "
                                 "render time", node)

    # ------------------------------------------------------------------ folding
    def _fold_body(self, body: list[nodes.Node]) -> Folded:
        parts: list[str] = []
        for stmt in body:
            if not isinstance(stmt, nodes.Output):
                return UNKNOWN
            for expr in stmt.nodes:
                v = expr.data if isinstance(expr, nodes.TemplateData) else self._fold(expr)
                if not isinstance(v, str | int):
                    return UNKNOWN
                parts.append(str(v))
        return _bounded("".join(parts))

    def _fold(self, node: nodes.Node | None, depth: int = 0) -> Folded:
        """Statically known value of an expression (str, int, list ...) or UNKNOWN."""
        if node is None or depth > MAX_FOLD_DEPTH:
            return UNKNOWN
        d = depth + 1
        if isinstance(node, nodes.Const):
            v = node.value
            if isinstance(v, str):
                return _bounded(v)
            return v if isinstance(v, int | float | bool) or v is None else UNKNOWN
        if isinstance(node, nodes.TemplateData):
            return _bounded(node.data)
        if isinstance(node, nodes.Name):
            return self.constants.get(node.name, UNKNOWN)
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self._fold(i, d) for i in node.items]
            return UNKNOWN if any(i is UNKNOWN for i in items) else items
        if isinstance(node, nodes.Concat):
            parts = [self._fold(n, d) for n in node.nodes]
            if any(not isinstance(p, str | int) for p in parts):
                return UNKNOWN
            return _bounded("".join(str(p) for p in parts))
        if isinstance(node, nodes.Add | nodes.Mul | nodes.Mod):
            return _binop(node, self._fold(node.left, d), self._fold(node.right, d))
        if isinstance(node, nodes.Getitem):
            return _index(self._fold(node.node, d), node.arg, lambda n: self._fold(n, d))
        if isinstance(node, nodes.Filter):
            return _filter(node.name, self._fold(node.node, d),
                           [self._fold(a, d) for a in node.args],
                           {str(k.key): self._fold(k.value, d) for k in node.kwargs})
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            obj = self._fold(node.node.node, d)
            args = [self._fold(a, d) for a in node.args]
            if node.kwargs or node.dyn_args or node.dyn_kwargs:
                return UNKNOWN
            return _method(obj, node.node.attr, args)
        return UNKNOWN


_BUILDERS = (nodes.Concat, nodes.Add, nodes.Mul, nodes.Mod, nodes.Filter, nodes.Call,
             nodes.Getitem)


def _walk(root: nodes.Node) -> Iterator[nodes.Node]:
    stack: list[nodes.Node] = [root]
    while stack:
        node = stack.pop()
        yield node
        children = list(node.iter_child_nodes())
        children.reverse()
        stack.extend(children)


def _builds_string(node: nodes.Node) -> bool:
    """Expression that assembles a string (as opposed to a plain variable or index)."""
    for n in _walk(node):
        if isinstance(n, nodes.Concat | nodes.Mod):
            return True
        if isinstance(n, nodes.Add) and (
            (isinstance(n.left, nodes.Const) and isinstance(n.left.value, str))
            or (isinstance(n.right, nodes.Const) and isinstance(n.right.value, str))
        ):
            return True
        if isinstance(n, nodes.Filter) and n.name in (
            "join", "replace", "reverse", "format", "string", "lower", "upper"
        ):
            return True
    return False


def _bounded(v: str) -> Folded:
    return v if len(v) <= MAX_FOLD_CHARS else UNKNOWN


def _binop(node: nodes.Node, left: Folded, right: Folded) -> Folded:
    if left is UNKNOWN or right is UNKNOWN:
        return UNKNOWN
    if isinstance(node, nodes.Add):
        if isinstance(left, str) and isinstance(right, str):
            return _bounded(left + right)
        if isinstance(left, list) and isinstance(right, list):
            return left + right if len(left) + len(right) <= MAX_FOLD_CHARS else UNKNOWN
        return UNKNOWN
    if isinstance(node, nodes.Mul):
        if isinstance(left, str) and type(right) is int \
                and 0 <= right * len(left) <= MAX_FOLD_CHARS:
            return left * right
        return UNKNOWN
    if isinstance(node, nodes.Mod) and isinstance(left, str):
        args = right if isinstance(right, list | tuple) else [right]
        return _percent_format(left, list(args))
    return UNKNOWN


def _index(obj: Folded, arg: nodes.Node, fold: Callable[[nodes.Node], Folded]) -> Folded:
    if not isinstance(obj, str | list):
        return UNKNOWN
    if isinstance(arg, nodes.Slice):
        bounds: list[int | None] = []
        for x in (arg.start, arg.stop, arg.step):
            b = fold(x) if x is not None else None
            if b is not None and type(b) is not int:
                return UNKNOWN
            bounds.append(b if type(b) is int else None)
        if bounds[2] == 0:
            return UNKNOWN
        return obj[slice(*bounds)]
    idx = fold(arg)
    if type(idx) is int and -len(obj) <= idx < len(obj):
        return obj[idx]
    return UNKNOWN


_PERCENT = re.compile(r"%([scd%])")
_BRACES = re.compile(r"\{(\d*)\}")


def _percent_format(fmt: str, args: list[Folded]) -> Folded:
    """``"%c%c" % (95, 95)`` restricted to %s %c %d without widths (no memory bombs)."""
    if re.search(r"%[^scd%]", fmt):
        return UNKNOWN
    it = iter(args)
    out: list[str] = []
    pos = 0
    for m in _PERCENT.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        if m.group(1) == "%":
            out.append("%")
            continue
        v = next(it, UNKNOWN)
        if m.group(1) == "c":
            if type(v) is int and 0 <= v < 0x110000:
                out.append(chr(v))
            elif isinstance(v, str) and len(v) == 1:
                out.append(v)
            else:
                return UNKNOWN
        elif (m.group(1) == "d" and type(v) is int) or (
            m.group(1) == "s" and isinstance(v, str | int)
        ):
            out.append(str(v))
        else:
            return UNKNOWN
    out.append(fmt[pos:])
    return _bounded("".join(out))


def _brace_format(fmt: str, args: list[Folded]) -> Folded:
    """``"{}{}".format(a, b)`` restricted to plain ``{}``/``{N}`` fields."""
    stripped = _BRACES.sub("", fmt)
    if "{" in stripped or "}" in stripped:
        return UNKNOWN  # format specs / attribute fields: not folded (checked as strings)
    out: list[str] = []
    pos = 0
    for auto, m in enumerate(_BRACES.finditer(fmt)):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        idx = int(m.group(1)) if m.group(1) else auto
        if idx >= len(args) or not isinstance(args[idx], str | int):
            return UNKNOWN
        out.append(str(args[idx]))
    out.append(fmt[pos:])
    return _bounded("".join(out))


def _filter(name: str, value: Folded, args: list[Folded], kwargs: dict[str, Folded]) -> Folded:
    if value is UNKNOWN or any(a is UNKNOWN for a in args):
        return UNKNOWN
    if name == "join" and isinstance(value, list | tuple | str) and not kwargs:
        sep = args[0] if args else ""
        if isinstance(sep, str) and all(isinstance(v, str | int) for v in value):
            return _bounded(sep.join(str(v) for v in value))
        return UNKNOWN
    if name == "format" and isinstance(value, str):
        return _percent_format(value, args)
    if isinstance(value, str):
        if name == "replace" and len(args) >= 2 and isinstance(args[0], str) \
                and isinstance(args[1], str):
            count = args[2] if len(args) > 2 and type(args[2]) is int else -1
            return _bounded(value.replace(args[0], args[1], count))
        simple: dict[str, Callable[[str], str]] = {
            "lower": str.lower, "upper": str.upper, "title": str.title,
            "capitalize": str.capitalize, "trim": str.strip, "string": str,
            "e": str, "escape": str, "safe": str}
        if name in simple:
            return simple[name](value)
        if name == "reverse":
            return value[::-1]
        if name == "list":
            return list(value)
    if isinstance(value, list | tuple) and value:
        if name == "first":
            return value[0]
        if name == "last":
            return value[-1]
        if name == "reverse":
            return list(value)[::-1]
        if name == "list":
            return list(value)
    return UNKNOWN


def _method(obj: Folded, method: str, args: list[Folded]) -> Folded:
    if not isinstance(obj, str) or any(a is UNKNOWN for a in args):
        return UNKNOWN
    if method == "format":
        return _brace_format(obj, args)
    if method == "join" and len(args) == 1 and isinstance(args[0], list | tuple | str):
        if all(isinstance(v, str) for v in args[0]):
            return _bounded(obj.join(args[0]))
        return UNKNOWN
    if method == "replace" and len(args) == 2 and all(isinstance(a, str) for a in args):
        return _bounded(obj.replace(args[0], args[1]))  # type: ignore[arg-type]
    simple: dict[str, Callable[[str], str]] = {
        "upper": str.upper, "lower": str.lower, "strip": str.strip,
        "lstrip": str.lstrip, "rstrip": str.rstrip, "title": str.title,
        "capitalize": str.capitalize, "swapcase": str.swapcase}
    if method in simple and not args:
        return simple[method](obj)
    return UNKNOWN


# ----------------------------------------------------------------- templates anywhere

# Jinja delimiters (the default ones: every renderer we know of uses them).
_JINJA_MARK = re.compile(r"\{\{|\{%")
_TAG_EXPR = re.compile(
    r"^\s*(?:if|elif|do|(?:for\s+.+?\s+in)|(?:set\s+[\w, ]+=)|print)\s+(.*?)\s*(?:recursive\s*)?$",
    re.S)
_FRAGMENT = re.compile(r"\{\{-?(.*?)-?\}\}|\{%-?(.*?)-?%\}", re.S)
MAX_FRAGMENTS = 2000
MAX_VALUES = 100_000


def has_jinja(text: str) -> bool:
    return _JINJA_MARK.search(text) is not None


def analyze_embedded(text: str, ctx: ScanContext, location: Location,
                     budget: TemplateBudget) -> None:
    """A Jinja template inside any text (a ``*.j2``, a config value, a README): only
    internals (``template-python-internals``, malicious) are reported, since ordinary
    templates of web and config tools use includes, attr() and gadgets legitimately.

    The whole text is parsed as a template first; text that is not one as a whole (code,
    prose with braces) is searched fragment by fragment: every ``{{ expression }}`` and the
    expression of every ``{% if / for / set / do %}`` tag."""
    if not has_jinja(text):
        return
    scratch = ScanContext(ctx.display_path, ctx.limits, ctx.depth)
    analyze_template(text, scratch, location, budget)
    if any(f.rule == TEMPLATE_SYNTAX.id for f in scratch.findings):
        scratch = ScanContext(ctx.display_path, ctx.limits, ctx.depth)
        for i, m in enumerate(_FRAGMENT.finditer(text)):
            if i >= MAX_FRAGMENTS or budget.templates <= 0:
                break
            expr = m.group(1)
            if expr is None:
                tag = _TAG_EXPR.match(m.group(2))
                if tag is None:
                    continue
                expr = tag.group(1)
            line = text.count("\n", 0, m.start()) + 1
            analyze_template("{{ " + expr + " }}", scratch, _at(location, line), budget)
    ctx.findings.extend(f for f in scratch.findings if f.rule == TEMPLATE_INTERNALS.id)


def analyze_values(value: object, ctx: ScanContext, location: Location,
                   budget: TemplateBudget, skip: frozenset[str] = frozenset()) -> None:
    """Every string inside a parsed JSON/YAML document (escapes already decoded), as an
    embedded template; ``skip`` names top-level keys analysed elsewhere."""
    stack: list[tuple[str, object]] = [("", value)]
    seen = 0
    while stack and seen < MAX_VALUES:
        path, v = stack.pop()
        seen += 1
        if isinstance(v, str):
            if has_jinja(v):
                where = replace(location, detail=f"{location.detail or ''} value {path or '/'}"
                                .strip())
                analyze_embedded(v, ctx, where, budget)
        elif isinstance(v, dict):
            for k, item in v.items():
                if not path and isinstance(k, str) and k in skip:
                    continue
                stack.append((f"{path}.{k}" if path else str(k), item))
                if isinstance(k, str) and has_jinja(k):
                    stack.append((f"{path}<key>", k))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))
