"""Walk one module's AST in source order, track what names hold, and run the lint checks.

Never imports or executes the linted code: only ``ast`` nodes are inspected.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass

from mlwarden.lint import checks
from mlwarden.lint.scope import Scope
from mlwarden.lint.values import (
    MAX_TRACKED_ITEMS,
    UNKNOWN,
    Const,
    DictVal,
    Instance,
    LocalPath,
    PartialVal,
    Ref,
    TupleVal,
    Value,
)
from mlwarden.report.rules import Rule

# Calls whose result is a local filesystem path.
_PATH_CALLS = {
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
    "os.getcwd", "os.fspath", "tempfile.mkdtemp", "tempfile.gettempdir",
    "huggingface_hub.snapshot_download", "huggingface_hub.hf_hub_download",
}
_PATH_CONTEXTS = {"tempfile.TemporaryDirectory"}


@dataclass(frozen=True)
class RawFinding:
    """A finding before suppression and notebook line mapping."""

    rule: Rule
    message: str
    line: int
    col: int  # 1-based
    end_line: int


@dataclass
class CallSite:
    """A call with partials unfolded and known ``**dict`` expansions merged."""

    node: ast.Call
    qualname: str | None  # canonical callee, when it comes from an import
    last: str  # last dotted component of the callee ("from_pretrained")
    args: list[Value]
    keywords: dict[str, Value]
    open_args: bool  # a ``*unknown`` expansion: positions past it are unknown
    open_kwargs: bool  # a ``**unknown`` expansion: any keyword might be present

    @property
    def root(self) -> str:
        return self.qualname.split(".", 1)[0] if self.qualname else ""

    def arg(self, index: int, keyword: str | None = None) -> Value | None:
        """The value passed for a parameter, by keyword or position (None: not passed)."""
        if keyword is not None and keyword in self.keywords:
            return self.keywords[keyword]
        if index < len(self.args):
            return self.args[index]
        return UNKNOWN if self.open_args else None


class Analyzer:
    def __init__(self) -> None:
        self.findings: list[RawFinding] = []
        self._deferred: deque[tuple[ast.FunctionDef | ast.AsyncFunctionDef, Scope]] = deque()

    # ------------------------------------------------------------------ entry point

    def run(self, tree: ast.Module) -> list[RawFinding]:
        module = Scope("module")
        self.visit_body(tree.body, module)
        while self._deferred:
            fn, parent = self._deferred.popleft()
            scope = Scope("function", parent)
            self._bind_params(fn.args, scope)
            self.visit_body(fn.body, scope)
        seen: set[tuple[str, int, int, str]] = set()
        out: list[RawFinding] = []
        for f in sorted(self.findings, key=lambda f: (f.line, f.col, f.rule.id)):
            key = (f.rule.id, f.line, f.col, f.message)
            if key not in seen:
                seen.add(key)
                out.append(f)
        return out

    def report(self, rule: Rule, message: str, node: ast.AST) -> None:
        line = getattr(node, "lineno", 1)
        self.findings.append(RawFinding(
            rule, message, line, getattr(node, "col_offset", 0) + 1,
            getattr(node, "end_lineno", None) or line,
        ))

    # ------------------------------------------------------------------ statements

    def visit_body(self, body: list[ast.stmt], scope: Scope) -> None:
        for stmt in body:
            self.visit_stmt(stmt, scope)

    def visit_stmt(self, node: ast.stmt, scope: Scope) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                self.scan(d, scope)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.scan(default, scope)
            scope.bind(node.name, UNKNOWN)
            self._deferred.append((node, scope))
        elif isinstance(node, ast.ClassDef):
            for e in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self.scan(e, scope)
            self.visit_body(node.body, Scope("class", scope))
            scope.bind(node.name, UNKNOWN)
        elif isinstance(node, ast.Assign):
            self.scan(node.value, scope)
            value = self.eval(node.value, scope)
            for target in node.targets:
                checks.check_assignment(self, target, node.value, scope)
                self.bind_target(target, value, scope)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.scan(node.value, scope)
                checks.check_assignment(self, node.target, node.value, scope)
                self.bind_target(node.target, self.eval(node.value, scope), scope)
        elif isinstance(node, ast.AugAssign):
            self.scan(node.value, scope)
            self.bind_target(node.target, UNKNOWN, scope)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    scope.bind(alias.asname, Ref(alias.name))
                else:
                    top = alias.name.split(".", 1)[0]
                    scope.bind(top, Ref(top))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    continue
                bound = alias.asname or alias.name
                if node.level or not node.module:
                    scope.bind(bound, UNKNOWN)  # our own package: not a library we know
                else:
                    scope.bind(bound, Ref(f"{node.module}.{alias.name}"))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.scan(node.iter, scope)
            self.bind_target(node.target, UNKNOWN, scope)
            self.visit_body(node.body, scope)
            self.visit_body(node.orelse, scope)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.scan(item.context_expr, scope)
                if item.optional_vars is not None:
                    ctx = self.eval(item.context_expr, scope)
                    is_dir = isinstance(ctx, Instance) and ctx.qualname in _PATH_CONTEXTS
                    self.bind_target(item.optional_vars, LocalPath() if is_dir else UNKNOWN,
                                     scope)
            self.visit_body(node.body, scope)
        elif isinstance(node, ast.Expr):
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                self.scan(node.value, scope)  # a bare string is a docstring: prose, not code
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                scope.module().mark_conflicting(name)
        elif isinstance(node, ast.Delete):
            for t in node.targets:
                self.bind_target(t, UNKNOWN, scope)
        elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            self.visit_body(node.body, scope)  # type: ignore[attr-defined]
            for h in node.handlers:  # type: ignore[attr-defined]
                if h.type is not None:
                    self.scan(h.type, scope)
                if h.name:
                    scope.bind(h.name, UNKNOWN)
                self.visit_body(h.body, scope)
            self.visit_body(node.orelse, scope)  # type: ignore[attr-defined]
            self.visit_body(node.finalbody, scope)  # type: ignore[attr-defined]
        elif isinstance(node, ast.Match):
            self.scan(node.subject, scope)
            for case in node.cases:
                for sub in ast.walk(case.pattern):
                    captured = getattr(sub, "name", None)
                    if isinstance(captured, str):
                        scope.bind(captured, UNKNOWN)
                if case.guard is not None:
                    self.scan(case.guard, scope)
                self.visit_body(case.body, scope)
        else:
            # If, While, Return, Raise, Assert...: expressions first, then nested bodies.
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.visit_stmt(child, scope)
                else:
                    self.scan(child, scope)

    def _bind_params(self, args: ast.arguments, scope: Scope) -> None:
        params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        params += [a for a in (args.vararg, args.kwarg) if a is not None]
        for a in params:
            scope.bind(a.arg, UNKNOWN)

    def bind_target(self, target: ast.expr, value: Value, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.bind(target.id, value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            elts = target.elts
            known = (isinstance(value, TupleVal) and len(value.items) == len(elts)
                     and not any(isinstance(e, ast.Starred) for e in elts))
            for i, e in enumerate(elts):
                item = value.items[i] if known and isinstance(value, TupleVal) else UNKNOWN
                self.bind_target(e.value if isinstance(e, ast.Starred) else e, item, scope)
        elif isinstance(target, ast.Starred):
            self.bind_target(target.value, UNKNOWN, scope)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            # kw["revision"] = "main" updates a dict we are tracking.
            current = scope.lookup(target.value.id)
            if isinstance(current, DictVal):
                key = self.eval(target.slice, scope)
                if isinstance(key, Const) and isinstance(key.value, str):
                    scope.bind(target.value.id, current.with_item(key.value, value))
                else:
                    scope.bind(target.value.id, DictVal(current.items, False))

    # ------------------------------------------------------------------ expressions

    def scan(self, node: ast.AST, scope: Scope) -> None:
        """Visit every call, dict literal and string inside an expression, innermost first."""
        if isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.scan(default, scope)
            inner = Scope("function", scope)
            self._bind_params(node.args, inner)
            self.scan(node.body, inner)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = Scope("comp", scope)
            for gen in node.generators:
                self.scan(gen.iter, inner)
                self.bind_target(gen.target, UNKNOWN, inner)
                for cond in gen.ifs:
                    self.scan(cond, inner)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for p in parts:
                self.scan(p, inner)
            return
        for child in ast.iter_child_nodes(node):
            self.scan(child, scope)
        if isinstance(node, ast.NamedExpr):
            self.bind_target(node.target, self.eval(node.value, scope), scope)
        elif isinstance(node, ast.Call):
            checks.check_call(self, self.call_site(node, scope), scope)
            self._track_dict_mutation(node, scope)
        elif isinstance(node, ast.Dict):
            checks.check_dict(self, node, scope)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            checks.check_string(self, node)

    def _track_dict_mutation(self, node: ast.Call, scope: Scope) -> None:
        f = node.func
        if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)):
            return
        current = scope.lookup(f.value.id)
        if not isinstance(current, DictVal):
            return
        name = f.value.id
        if f.attr == "update":
            new = current
            for a in node.args:
                new = new.merged(self.eval(a, scope))
            new = new.merged(self._keywords(node, scope)[0])
            scope.bind(name, new)
        elif f.attr in ("setdefault", "pop") and node.args:
            key = self.eval(node.args[0], scope)
            if not (isinstance(key, Const) and isinstance(key.value, str)):
                scope.bind(name, DictVal(current.items, False))
            elif f.attr == "pop":
                scope.bind(name, current.without(key.value))
            elif current.get(key.value) is None:
                v = self.eval(node.args[1], scope) if len(node.args) > 1 else Const(None)
                scope.bind(name, current.with_item(key.value, v))
        elif f.attr == "clear":
            scope.bind(name, DictVal(()))

    def _keywords(self, node: ast.Call, scope: Scope) -> tuple[DictVal, bool]:
        """Keywords of a call as a dict, with known ``**`` expansions merged in order."""
        items: dict[str, Value] = {}
        complete = True
        for kw in node.keywords:
            value = self.eval(kw.value, scope)
            if kw.arg is not None:
                items[kw.arg] = value
            elif isinstance(value, DictVal):
                items.update(value.items)
                complete = complete and value.complete
            else:
                complete = False
        kws = DictVal.of(items, complete)
        return kws, not kws.complete

    def _positional(self, node: ast.Call, scope: Scope) -> tuple[list[Value], bool]:
        args: list[Value] = []
        for a in node.args:
            if isinstance(a, ast.Starred):
                v = self.eval(a.value, scope)
                if isinstance(v, TupleVal):
                    args.extend(v.items)
                    continue
                return args, True
            args.append(self.eval(a, scope))
        return args, False

    def call_site(self, node: ast.Call, scope: Scope) -> CallSite:
        func = self.eval(node.func, scope)
        args, open_args = self._positional(node, scope)
        kws, open_kwargs = self._keywords(node, scope)
        # Unfold partials: partial(f, a, k=1)(b, k=2) calls f(a, b, k=2).
        depth = 0
        while isinstance(func, PartialVal) and depth < 8:
            args = [*func.args, *args]
            kws = func.keywords.merged(kws)
            open_kwargs = open_kwargs or not func.keywords.complete
            func = func.func
            depth += 1
        qualname = func.qualname if isinstance(func, Ref) else None
        if qualname is not None:
            last = qualname.rsplit(".", 1)[-1]
        elif isinstance(node.func, ast.Attribute):
            last = node.func.attr
        elif isinstance(node.func, ast.Name):
            last = node.func.id
        else:
            last = ""
        return CallSite(node, qualname, last, args, dict(kws.items), open_args, open_kwargs)

    def eval(self, node: ast.AST, scope: Scope) -> Value:
        """What an expression evaluates to, as far as a static reading can tell."""
        if isinstance(node, ast.Constant):
            return Const(node.value)
        if isinstance(node, ast.Name):
            return scope.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base = self.eval(node.value, scope)
            if isinstance(base, Ref):
                return Ref(f"{base.qualname}.{node.attr}")
            if isinstance(base, Instance):
                return Ref(f"{base.qualname}().{node.attr}")
            if isinstance(base, LocalPath):
                return LocalPath()  # Path(...).parent, .resolve, ...
            return UNKNOWN
        if isinstance(node, ast.Dict):
            items: dict[str, Value] = {}
            complete = True
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    inner = self.eval(v, scope)
                    if isinstance(inner, DictVal):
                        items.update(inner.items)
                        complete = complete and inner.complete
                    else:
                        complete = False
                    continue
                key = self.eval(k, scope)
                if isinstance(key, Const) and isinstance(key.value, str):
                    items[key.value] = self.eval(v, scope)
                elif not isinstance(key, Const):
                    complete = False
            return DictVal.of(items, complete)
        if isinstance(node, (ast.Tuple, ast.List)):
            if len(node.elts) > MAX_TRACKED_ITEMS or any(
                    isinstance(e, ast.Starred) for e in node.elts):
                return UNKNOWN
            return TupleVal(tuple(self.eval(e, scope) for e in node.elts))
        if isinstance(node, ast.Call):
            return self._eval_call(node, scope)
        if isinstance(node, ast.JoinedStr):
            return self._eval_fstring(node, scope)
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left, scope), self.eval(node.right, scope)
            if isinstance(left, LocalPath) and isinstance(node.op, ast.Div):
                return LocalPath()
            if (isinstance(node.op, ast.Add) and isinstance(left, Const)
                    and isinstance(right, Const) and isinstance(left.value, str)
                    and isinstance(right.value, str)):
                return Const(left.value + right.value)
            return UNKNOWN
        if isinstance(node, ast.Subscript):
            base = self.eval(node.value, scope)
            key = self.eval(node.slice, scope)
            if isinstance(base, DictVal) and isinstance(key, Const) and isinstance(key.value, str):
                return base.get(key.value) or UNKNOWN
            if (isinstance(base, TupleVal) and isinstance(key, Const)
                    and isinstance(key.value, int) and -len(base.items) <= key.value
                    < len(base.items)):
                return base.items[key.value]
            return UNKNOWN
        if isinstance(node, ast.NamedExpr):
            return self.eval(node.value, scope)
        if isinstance(node, ast.IfExp):
            a, b = self.eval(node.body, scope), self.eval(node.orelse, scope)
            return a if a == b else UNKNOWN
        return UNKNOWN

    def _eval_fstring(self, node: ast.JoinedStr, scope: Scope) -> Value:
        parts: list[str] = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
                continue
            if isinstance(v, ast.FormattedValue) and v.format_spec is None and v.conversion == -1:
                inner = self.eval(v.value, scope)
                if isinstance(inner, Const) and isinstance(inner.value, str):
                    parts.append(inner.value)
                    continue
                if isinstance(inner, LocalPath) and not parts:
                    return LocalPath()  # f"{model_dir}/weights"
            return UNKNOWN
        return Const("".join(parts))

    def _eval_call(self, node: ast.Call, scope: Scope) -> Value:
        func = self.eval(node.func, scope)
        if isinstance(func, LocalPath):
            return LocalPath()  # Path(...).resolve(), .joinpath(...)
        if not isinstance(func, Ref):
            return UNKNOWN
        q = func.qualname
        if q in ("functools.partial", "partial") and node.args:
            inner = self.eval(node.args[0], scope)
            rest = [self.eval(a, scope) for a in node.args[1:]
                    if not isinstance(a, ast.Starred)]
            kws, _ = self._keywords(node, scope)
            if any(isinstance(a, ast.Starred) for a in node.args[1:]):
                return UNKNOWN
            return PartialVal(inner, tuple(rest), kws)
        if q == "dict":
            d = DictVal(())
            for a in node.args:
                d = d.merged(self.eval(a, scope))
            return d.merged(self._keywords(node, scope)[0])
        if q in ("getattr", "builtins.getattr") and len(node.args) == 2:
            base, attr = self.eval(node.args[0], scope), self.eval(node.args[1], scope)
            if isinstance(base, Ref) and isinstance(attr, Const) and isinstance(attr.value, str):
                return Ref(f"{base.qualname}.{attr.value}")
            return UNKNOWN
        if q in ("importlib.import_module", "__import__") and node.args:
            name = self.eval(node.args[0], scope)
            if isinstance(name, Const) and isinstance(name.value, str):
                return Ref(name.value if q != "__import__" else name.value.split(".")[0])
            return UNKNOWN
        if q in ("str", "os.fspath") and node.args:
            inner = self.eval(node.args[0], scope)
            return inner if isinstance(inner, (LocalPath, Const)) else UNKNOWN
        if q in _PATH_CALLS or q.startswith("os.path.") or func.last in (
                "snapshot_download", "hf_hub_download"):
            return LocalPath()
        return Instance(q)
