"""Remote code: the Python files that ``trust_remote_code=True`` (transformers auto_map,
custom pipelines, diffusers custom components) and ``torch.hub.load`` (hubconf.py) import.

The source is parsed with the ast module and never imported, compiled to bytecode or run.
The one Python behaviour analyser (``mlwarden.behaviour``) finds the behaviours and judges
them under the ``model`` profile (docs/remote-code.md): what runs at import time (module
level and what it calls) or at load time (construction of the classes ``from_pretrained``
instantiates, hubconf entry points) is held to an allowlist; the same behaviour only inside
other functions is suspicious. Constant bytes handed to a deserialiser are scanned with the
pickle scanner and reported at the line that loads them.
"""

from __future__ import annotations

import ast
import re

from mlwarden.behaviour import collect as c
from mlwarden.behaviour import entry
from mlwarden.behaviour import rules as BR
from mlwarden.behaviour.entry import is_hubconf
from mlwarden.behaviour.parse import MAX_PYTHON_BYTES
from mlwarden.behaviour.policy import MODEL, Root, judge
from mlwarden.behaviour.program import Module, Program, analyse_module
from mlwarden.behaviour.resolve import Resolver
from mlwarden.report.model import Finding, Location, Verdict
from mlwarden.scan.context import Limits, ScanContext

__all__ = ["analyze_python", "is_hubconf", "load_time_findings", "nested_pickle_findings",
           "relative_imports"]

MAX_SIDE_EFFECTS = 10
CODE_UNPARSEABLE = BR.CODE_UNPARSEABLE
IMPORT_SIDE_EFFECT = BR.IMPORT_SIDE_EFFECT

# transformers.dynamic_module_utils.get_relative_imports: loaders find the files a module
# needs with these regexes (not the ast), so the repository summary mirrors them exactly.
_REL_IMPORT = re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE)
_REL_FROM = re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE)


def relative_imports(text: str) -> list[str]:
    """Module names transformers would fetch alongside a remote-code file."""
    return sorted(set(_REL_IMPORT.findall(text)) | set(_REL_FROM.findall(text)))


def _module(data: bytes, ctx: ScanContext) -> Module | None:
    m = analyse_module(data, ctx.display_path,
                       limit=min(MAX_PYTHON_BYTES, ctx.limits.max_text_bytes))
    if m.problem is not None:
        if m.problem.kind == "limit":
            ctx.limit(m.problem.message)
        else:
            ctx.report(CODE_UNPARSEABLE, m.problem.message,
                       Location(line=m.problem.line, column=m.problem.column))
        return None
    return m


def _roots(m: Module, load: dict[str, str]) -> list[Root]:
    roots = [Root((m.key, c.MODULE), "import", "called on import")]
    functions = m.collector.functions if m.collector else set()
    roots += [Root((m.key, scope), "load", why) for scope, why in load.items()
              if scope in functions]
    return roots


def _report(m: Module, ctx: ScanContext, load: dict[str, str]) -> None:
    for v in judge(Program([m]), _roots(m, load), MODEL):
        ctx.report(v.rule, v.message, Location(line=v.line, column=v.column))
    for line, col, written, folded in m.folded[:MAX_FINDINGS]:
        ctx.report(BR.OBFUSCATED, f"identifier {written!r} is {folded!r} to Python (NFKC "
                   "folding of look-alike characters)", Location(line=line, column=col))
    for e in m.events:
        if e.kind == c.NESTED_PICKLE and e.data is not None:
            for f in nested_pickle_findings(e.data, ctx.display_path, e.line, e.col,
                                            e.detail):
                ctx.findings.append(f)


MAX_FINDINGS = 25


def nested_pickle_findings(data: bytes, display_path: str, line: int, column: int,
                           what: str) -> list[Finding]:
    """Scan constant bytes a deserialiser receives with the pickle scanner; its findings,
    located at the line of the call."""
    from mlwarden.scan.pickle.api import scan_pickle

    sub = ScanContext(display_path=f"{display_path}:{line}", limits=Limits())
    scan_pickle(data, sub)
    out: list[Finding] = []
    for f in sub.findings:
        if f.verdict is Verdict.CLEAN:
            continue
        off = f.location.offset if f.location else None
        out.append(Finding(f.rule, f.severity, f.verdict,
                           f"{what} at line {line}: {f.message}",
                           Location(line=line, column=column, offset=off,
                                    detail="nested pickle")))
    return out


def analyze_python(data: bytes, ctx: ScanContext) -> None:
    """Analyse one Python source file; report through ``ctx``."""
    ctx.format = "python"
    m = _module(data, ctx)
    if m is None or m.tree is None or m.resolver is None:
        return
    _report(m, ctx, entry.load_roots(m.tree, m.resolver, hubconf=is_hubconf(ctx.display_path)))
    for line, col, what in module_side_effects(m.tree, m.resolver)[:MAX_SIDE_EFFECTS]:
        ctx.report(IMPORT_SIDE_EFFECT, f"runs at import: {what}", Location(line=line,
                                                                           column=col))


def load_time_findings(data: bytes, display_path: str, classes: dict[str, str],
                       already: tuple[Finding, ...] = ()
                       ) -> tuple[list[Finding], list[tuple[str, str, str]]]:
    """What loading runs beyond the import, for the classes a loader instantiates by name
    (``classes``: class name -> what instantiates it, e.g. "from_pretrained instantiates
    EvilModel (auto_map.AutoModel in config.json)"; the repository check knows them from the
    configs). Returns the malicious findings that the per-file analysis (``already``) did
    not report, and the named classes' bases imported from sibling modules as (module,
    class, why), so the caller can follow them."""
    ctx = ScanContext(display_path=display_path, limits=Limits())
    m = _module(data, ctx)
    if m is None or m.tree is None or m.resolver is None:
        return [], []
    tree = m.tree
    defined = entry.classes_of(tree)
    siblings: dict[str, tuple[str, str]] = {}  # local name -> (module, name): from .m import X
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module:
            for a in stmt.names:
                siblings[a.asname or a.name] = (stmt.module, a.name)
    roots: dict[str, str] = {}
    inherited: list[tuple[str, str, str]] = []
    for name, why in classes.items():
        if name not in defined:
            if name in siblings:  # re-exported from a sibling module
                inherited.append((*siblings[name], why))
            continue
        entry.add_class_roots(defined, name, why, roots)
        for anc in entry.ancestors(defined, name):
            for b in defined[anc].bases:
                if isinstance(b, ast.Name) and b.id not in defined and b.id in siblings:
                    inherited.append((*siblings[b.id], why))
    for key, why in entry.load_roots(tree, m.resolver, is_hubconf(display_path)).items():
        roots.setdefault(key, why)
    _report(m, ctx, roots)
    seen = {_where_key(f) for f in already}
    new = [f for f in ctx.findings if f.verdict is Verdict.MALICIOUS
           and _where_key(f) not in seen]
    return new, inherited[:entry.MAX_INHERITED]


def _where_key(f: Finding) -> tuple[str, int | None, int | None]:
    loc = f.location
    return f.rule, loc.line if loc else None, loc.column if loc else None


# ---------------------------------------------------------------------- import-time effects

_HARMLESS = (
    "logging.", "warnings.", "typing.", "typing_extensions.", "collections.", "dataclasses.",
    "enum.", "functools.", "re.", "os.path.", "os.environ.get", "os.getenv", "torch.",
    "math.", "numpy.", "packaging.", "importlib.util.find_spec", "importlib.metadata.",
    "transformers.", "diffusers.", "huggingface_hub.utils.", "contextlib.", "inspect.",
    "operator.", "itertools.", "einops.", "safetensors.", "tokenizers.", "sys.version",
    "abc.", "copy.", "jax.", "flax.", "tensorflow.", "accelerate.", "peft.", "sentencepiece.",
    "tiktoken.", "regex.", "unicodedata.", "json.", "timm.", "torchvision.", "triton.",
)
_HARMLESS_NAMES = frozenset({
    "TypeVar", "NewType", "namedtuple", "NamedTuple", "ParamSpec", "dict", "list", "set",
    "tuple", "frozenset", "int", "float", "str", "bool", "len", "range", "sorted", "zip",
    "enumerate", "map", "filter", "getattr", "hasattr", "isinstance", "object", "property",
    "staticmethod", "classmethod", "super", "type", "min", "max", "sum", "any", "all", "print",
})


def module_side_effects(tree: ast.Module, resolver: Resolver) -> list[tuple[int, int, str]]:
    """Module-level statements with effects beyond defining things (context for reviewers)."""
    out: list[tuple[int, int, str]] = []

    def call_ok(call: ast.Call) -> bool:
        q = resolver.qualify(call.func)
        if q is None:
            root = call.func
            while isinstance(root, (ast.Attribute, ast.Call)):
                root = root.value if isinstance(root, ast.Attribute) else root.func
            # Same-file classes (constructors, .register()) are followed by the analysis.
            if isinstance(root, ast.Name) and root.id in resolver.defined \
                    and not _is_function(tree, root.id):
                return True
            attr = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            return attr.startswith(("register", "get_logger", "getLogger"))
        last = q.rsplit(".", 1)[-1]
        return q.startswith(_HARMLESS) or q in _HARMLESS_NAMES or last.startswith(
            ("register", "is_", "get_logger", "getLogger", "setLevel"))

    def check_expr(expr: ast.AST, stmt: ast.stmt) -> None:
        for sub in ast.walk(expr):
            if isinstance(sub, ast.Call) and not call_ok(sub):
                out.append((sub.lineno, sub.col_offset + 1,
                            f"call {ast.unparse(sub.func)[:60]}()"))
                return

    def visit(stmts: list[ast.stmt], in_class: bool = False) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Pass, ast.Global,
                                 ast.Nonlocal, ast.Assert, ast.Delete)):
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in stmt.decorator_list:
                    check_expr(d, stmt)
            elif isinstance(stmt, ast.ClassDef):
                visit(stmt.body, in_class=True)
            elif isinstance(stmt, ast.Expr):
                if not isinstance(stmt.value, ast.Constant):
                    check_expr(stmt.value, stmt)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                if stmt.value is not None:
                    check_expr(stmt.value, stmt)
            elif isinstance(stmt, ast.If):
                if c.is_main_check(stmt.test):
                    continue
                check_expr(stmt.test, stmt)
                visit(stmt.body, in_class)
                visit(stmt.orelse, in_class)
            elif isinstance(stmt, ast.Try):
                visit(stmt.body, in_class)
                for h in stmt.handlers:
                    visit(h.body, in_class)
                visit(stmt.orelse, in_class)
                visit(stmt.finalbody, in_class)
            else:
                kind = type(stmt).__name__.lower()
                out.append((stmt.lineno, stmt.col_offset + 1, f"module-level {kind} statement"))
            if len(out) >= MAX_SIDE_EFFECTS:
                return

    visit(tree.body)
    return out


def _is_function(tree: ast.Module, name: str) -> bool:
    return any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name
               for s in tree.body)
