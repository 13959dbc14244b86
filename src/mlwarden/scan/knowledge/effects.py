"""Does running a function or method have effects? Static analysis of Python source.

Used to tell plain reconstruction of a library class (NEWOBJ + BUILD: ``__new__``,
``__setstate__``, ``__del__`` and friends) from a call with effects, without importing
the library: ``sources.py`` finds the source, this module judges a function body.

A body is pure when every call in it is one of: a pure builtin (``len``, ``isinstance``,
``dict``, ``getattr``, ``setattr``, ``super``...); a container or string method
(``update``, ``pop``, ``get``, ``split``...); another method of the same class, a base
class's method, or a function/class of an installed module that is itself pure (followed
to a bounded depth); a call the knowledge base allowlists; a function of a computation
module (``math``, ``numpy``, ``copy``...) that the knowledge base does not list as
dangerous; ``warnings.warn`` or a logger method. Anything else (a dangerous name, a value
taken from the pickled state and called, an unknown function) is an effect, reported with
the reason. Attribute reads, subscripts and iteration of state values are not followed:
those values are themselves reconstructed objects, judged where they are built.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

PURE_BUILTINS = frozenset({
    "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable", "chr",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset",
    "getattr", "hasattr", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter",
    "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "pow", "range",
    "repr", "reversed", "round", "set", "setattr", "delattr", "slice", "sorted", "str",
    "sum", "super", "tuple", "type", "vars", "zip", "print", "NotImplementedError",
    "ValueError", "TypeError", "KeyError", "AttributeError", "RuntimeError", "IndexError",
    "Exception", "AssertionError", "DeprecationWarning", "UserWarning", "FutureWarning",
    "RuntimeWarning", "StopIteration", "OverflowError", "ZeroDivisionError", "LookupError",
})
SAFE_METHODS = frozenset({
    "update", "get", "pop", "popitem", "setdefault", "items", "keys", "values", "copy",
    "append", "extend", "add", "discard", "remove", "insert", "clear", "sort", "index",
    "count", "split", "rsplit", "join", "format", "startswith", "endswith", "lower",
    "upper", "strip", "lstrip", "rstrip", "replace", "encode", "decode", "partition",
    "rpartition", "isdigit", "isidentifier", "__setitem__", "__getitem__", "__contains__",
    "difference", "union", "intersection", "issubset", "issuperset", "fromkeys",
    "astype", "reshape", "tolist", "ravel", "view", "item", "squeeze", "flatten",
    "__setattr__", "__getattribute__", "__new__", "__init__", "__setstate__", "__getstate__",
    "__reduce_ex__", "warn", "debug", "info", "warning", "error", "exception", "critical",
    "log", "move_to_end", "warning_once", "info_once", "warning_advice",
})
# Modules whose functions compute (unless the knowledge base lists one as dangerous).
PURE_MODULES = frozenset({
    "math", "cmath", "copy", "collections", "itertools", "numbers", "re", "string",
    "struct", "binascii", "datetime", "decimal", "fractions", "typing", "dataclasses",
    "enum", "abc", "warnings", "numpy", "textwrap", "unicodedata", "heapq", "bisect",
    "array", "weakref", "operator", "functools", "types", "statistics", "random",
    "contextlib", "inspect", "logging", "scipy", "torch",
})
# Names a pure body may call although the knowledge base flags them for pickles.
_PURE_DESPITE_KB = frozenset({
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.vars",
    "builtins.type", "builtins.super", "builtins.map", "builtins.filter",
    "builtins.memoryview", "functools.partial", "functools.reduce", "functools.wraps",
    "functools.lru_cache", "functools.cached_property", "operator.itemgetter",
    "operator.attrgetter", "logging.getLogger", "inspect.signature", "inspect.isclass",
    "inspect.isfunction", "inspect.getmembers",
})

# Whole modules a library body may call although pickles may not import them.
_PURE_PREFIXES_DESPITE_KB = ("operator.", "_operator.", "functools.", "_functools.")

@dataclass(frozen=True)
class Scope:
    """What a body's names mean: resolves module-level names and methods of the class."""

    module: str
    resolve_name: Callable[[str], str | None]  # module-level name -> module.qualname
    method: Callable[[str, bool], FunctionRef | None]  # (name, from bases only)
    self_name: str | None  # first parameter of a method (self / cls)


@dataclass(frozen=True)
class FunctionRef:
    node: ast.FunctionDef | ast.AsyncFunctionDef
    scope: Scope
    key: str  # for memoising: module.qualname


class Judge:
    """Memoised purity verdicts. ``is_dangerous(name)`` and ``is_allowed_call(name)`` come
    from the knowledge base; ``follow(name)`` gives the pure-verdict of an installed
    module's function or class (or None when it cannot be found)."""

    def __init__(self, is_dangerous: Callable[[str], bool],
                 is_allowed_call: Callable[[str], bool],
                 follow: Callable[[str, int], str | None], max_depth: int = 4) -> None:
        self.is_dangerous = is_dangerous
        self.is_allowed_call = is_allowed_call
        self.follow = follow
        self.max_depth = max_depth
        self.memo: dict[str, str | None] = {}

    def function(self, ref: FunctionRef, depth: int = 0) -> str | None:
        """None when the body is pure, else the reason it is not."""
        if ref.key in self.memo:
            return self.memo[ref.key]
        if depth > self.max_depth:
            return f"{ref.key}: calls nested too deeply to follow"
        self.memo[ref.key] = None  # cycles: a cycle adds no call of its own
        reason = self._body(ref, depth)
        self.memo[ref.key] = reason
        return reason

    def _body(self, ref: FunctionRef, depth: int,
              outer_tainted: frozenset[str] = frozenset()) -> str | None:
        node = ref.node
        args = node.args
        params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        if args.vararg:
            params.add(args.vararg.arg)
        if args.kwarg:
            params.add(args.kwarg.arg)
        local_defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        for sub in _own_nodes(node):
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local_defs[sub.name] = sub
            elif isinstance(sub, ast.Global):
                return f"{ref.key}: rebinds module globals ({', '.join(sub.names)})"
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                mod = sub.module if isinstance(sub, ast.ImportFrom) else None
                names = [mod] if mod else [a.name for a in sub.names]
                for n in names:
                    if n and self.is_dangerous(n + ".*"):
                        return f"{ref.key}: imports {n}"
            elif isinstance(sub, ast.With | ast.AsyncWith):
                for item in sub.items:
                    if not isinstance(item.context_expr, ast.Call):
                        return f"{ref.key}: enters a context manager from a value"
        tainted, aliases = _flow(node, params | outer_tainted, ref.scope)
        aliases.update(_local_imports(node, ref.scope.module))
        for sub in _own_nodes(node):
            if isinstance(sub, ast.Call):
                f = sub.func
                if isinstance(f, ast.Name) and f.id in local_defs:
                    # A nested function that is called: its body runs here (closures see
                    # what this body computed).
                    inner = FunctionRef(local_defs[f.id], ref.scope, f"{ref.key}.{f.id}")
                    why = self._body(inner, depth + 1, frozenset(tainted))
                else:
                    why = self._call(sub, ref, tainted, aliases, depth)
                if why is not None:
                    return f"{ref.key}: {why}"
        return None

    def _call(self, call: ast.Call, ref: FunctionRef, tainted: set[str],
              aliases: dict[str, str], depth: int) -> str | None:
        f = call.func
        scope = ref.scope
        if isinstance(f, ast.Name):
            name = f.id
            if name in aliases:
                return self._global(aliases[name], depth)
            if name in tainted:
                return f"calls {name}, a value that comes from its arguments or state"
            if name in _assigned_names(ref.node):
                return None  # a local built from module data (a registry of hooks)
            target = scope.resolve_name(name)
            if target is None:
                return None if name in PURE_BUILTINS else f"calls unknown {name}"
            return self._global(target, depth)
        if not isinstance(f, ast.Attribute):
            return f"calls a computed callable ({ast.unparse(f)[:60]})"
        attr = f.attr
        base = f.value
        if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) \
                and base.func.id == "super":
            m = scope.method(attr, True)
            if m is None:
                return None if attr in SAFE_METHODS else f"super().{attr} not found"
            return self.function(m, depth + 1)
        if isinstance(base, ast.Name) and base.id == scope.self_name:
            m = scope.method(attr, False)
            if m is not None:
                return self.function(m, depth + 1)
            if attr in SAFE_METHODS:
                return None
            return f"calls self.{attr}, not a method of the class"
        dotted = _dotted_name(f)
        if dotted is not None:
            root, _, rest = dotted.partition(".")
            if root not in tainted and root not in _assigned_names(ref.node):
                target = scope.resolve_name(root)
                if target is not None:
                    return self._global(f"{target}.{rest}", depth)
                if root in ("object", "dict", "list", "set", "tuple", "str", "int", "float",
                            "type") and attr in SAFE_METHODS:
                    return None
        if attr in SAFE_METHODS:
            return None
        return f"calls {ast.unparse(f)[:60]}(), a method of a value"

    def _global(self, target: str, depth: int) -> str | None:
        if target in _PURE_DESPITE_KB or self.is_allowed_call(target) \
                or target.startswith(_PURE_PREFIXES_DESPITE_KB):
            return None
        if self.is_dangerous(target):
            return f"calls {target}"
        top = target.split(".")[0]
        if top in PURE_MODULES and top != target:
            return None
        why = self.follow(target, depth + 1)
        return why


def _local_imports(fn: ast.AST, module: str) -> dict[str, str]:
    """Names bound by ``import``/``from ... import`` inside a function body."""
    out: dict[str, str] = {}
    for n in ast.walk(fn):
        if isinstance(n, ast.Import):
            for a in n.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else \
                    a.name.split(".")[0]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                parts = module.split(".")
                parent = parts[: max(0, len(parts) - n.level)]
                base = ".".join([*parent, base] if base else parent)
            for a in n.names:
                if a.name != "*":
                    out[a.asname or a.name] = f"{base}.{a.name}"
    return out


def _own_nodes(fn: ast.AST) -> list[ast.AST]:
    """Nodes of a function body, not descending into nested functions, lambdas or
    classes (their bodies run only if called; nested functions are followed there)."""
    out: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        n = todo.pop()
        out.append(n)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        todo.extend(ast.iter_child_nodes(n))
    return out


def _dotted_name(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _assigned_names(fn: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx,
                                                                                ast.Store)}


def _names_in(expr: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}


def _flow(fn: ast.FunctionDef | ast.AsyncFunctionDef, params: set[str],
          scope: Scope) -> tuple[set[str], dict[str, str]]:
    """(names whose value may come from the arguments or the instance, local aliases of
    module-level callables). A local assigned from an expression that reads a tainted name
    is tainted; ``f = os.system`` makes ``f`` an alias of ``os.system``."""
    pairs: list[tuple[ast.AST, ast.AST]] = []  # (target, value)
    for n in ast.walk(fn):
        if isinstance(n, ast.Assign):
            pairs += [(t, n.value) for t in n.targets]
        elif isinstance(n, (ast.AnnAssign, ast.AugAssign)) and n.value is not None:
            pairs.append((n.target, n.value))
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            pairs.append((n.target, n.iter))
        elif isinstance(n, ast.NamedExpr):
            pairs.append((n.target, n.value))
        elif isinstance(n, (ast.With, ast.AsyncWith)):
            pairs += [(i.optional_vars, i.context_expr) for i in n.items if i.optional_vars]
    tainted = set(params)
    for _ in range(6):
        grew = False
        for target, value in pairs:
            if _names_in(value) & tainted:
                new = _names_in(target) - tainted
                if new:
                    tainted |= new
                    grew = True
        if not grew:
            break
    aliases: dict[str, str] = {}
    for target, value in pairs:
        if isinstance(target, ast.Name) and target.id not in tainted and isinstance(
                value, (ast.Name, ast.Attribute)):
            parts: list[str] = []
            v: ast.AST = value
            while isinstance(v, ast.Attribute):
                parts.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name):
                base = scope.resolve_name(v.id)
                if base is not None:
                    aliases[target.id] = ".".join([base, *reversed(parts)])
    return tainted, aliases


def class_hooks(has_setstate: bool) -> tuple[str, ...]:
    """Methods that plain reconstruction (NEWOBJ + BUILD with dict state, then use as a
    dict key or container, then garbage collection) may run."""
    base = ("__new__", "__setstate__", "__del__", "__hash__", "__eq__")
    return base if has_setstate else (*base, "__getattr__", "__getattribute__")


# Methods SETITEM(S)/APPEND(S)/ADDITEMS call on an instance that is not a dict/list/set.
ITEM_HOOKS = ("__setitem__", "append", "extend", "add")
