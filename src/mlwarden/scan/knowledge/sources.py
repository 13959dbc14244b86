"""What a name in an installed library really is, read from its source, never imported.

``classify(module, qualname) -> Installed | None``: finds the module's ``.py`` file on
``sys.path`` (and extra source roots from the scan policy) the way the import system
would, without running any package's ``__init__``; follows ``from x import y`` re-exports
and module-level aliases to the defining statement; and says whether it is a class, a
function or something else. For a class it judges plain reconstruction with
``effects.Judge``: every hook that NEWOBJ + BUILD (and later use as a dict key or
container, and garbage collection) may run, found along the class's bases, must be pure;
a base that cannot be read (a C extension, a missing module) makes the class unknown.
A module whose top-level code calls something dangerous is never vouched for (importing
it is the effect).
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from functools import lru_cache

from mlwarden.scan.knowledge import effects

MAX_SOURCE_BYTES = 4 << 20
_PURE_BASES = frozenset({
    "builtins.object", "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set",
    "builtins.frozenset", "builtins.str", "builtins.bytes", "builtins.int", "builtins.float",
    "builtins.bool", "builtins.complex", "builtins.Exception", "builtins.BaseException",
    "builtins.ValueError", "builtins.TypeError", "builtins.KeyError", "builtins.RuntimeError",
    "builtins.Warning", "builtins.UserWarning", "builtins.DeprecationWarning",
    "builtins.FutureWarning", "abc.ABC", "typing.Generic", "typing.Protocol",
    "typing.NamedTuple", "collections.OrderedDict", "collections.defaultdict",
    "collections.UserDict", "collections.UserList", "collections.Counter",
})
_EXTRA_ROOTS: list[str] = []


def set_source_roots(roots: list[str]) -> None:
    """Directories searched for library sources before sys.path (scan policy)."""
    global _JUDGE
    _EXTRA_ROOTS[:] = [os.path.abspath(r) for r in roots]
    _JUDGE = None  # its memo of verdicts depends on which sources are found
    _find_file.cache_clear()
    _module.cache_clear()
    classify.cache_clear()
    canonical.cache_clear()
    undefined.cache_clear()
    _closure.cache_clear()
    _bound_names_of.cache_clear()


@dataclass(frozen=True)
class Installed:
    kind: str  # class | function | other
    plain: bool  # a class whose reconstruction hooks are pure (NEW is safe)
    setattr_ok: bool  # BUILD with slot state (setattr) is pure too
    reason: str  # why not plain, or what vouches for it
    items_ok: bool = False  # SETITEMS/APPENDS/ADDITEMS on an instance are pure too


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Where installed distributions and the standard library live. Never the current
    directory or a scanned repository: a source file shipped next to a model is the
    attacker's, not a library."""
    import site
    import sysconfig

    prefixes = tuple(os.path.realpath(p) + os.sep for p in {sys.prefix, sys.base_prefix,
                                                            sys.exec_prefix})
    roots: list[str] = []
    paths = sysconfig.get_paths()
    cands = [paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    cands += [*site.getsitepackages(), site.getusersitepackages()]
    cands += [p for p in sys.path if p and os.path.realpath(p).startswith(prefixes)]
    for c in cands:
        real = os.path.realpath(c) if c else ""
        if real and os.path.isdir(real) and real not in roots:
            roots.append(real)
    return tuple(roots)


@lru_cache(maxsize=2048)
def _find_file(module: str) -> str | None:
    """The source file of ``module`` as PathFinder would find it (packages included)."""
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    for root in (*_EXTRA_ROOTS, *_installed_roots()):
        base = os.path.join(root or ".", *parts)
        for cand in (os.path.join(base, "__init__.py"), base + ".py"):
            if os.path.isfile(cand):
                return cand
    return None


@lru_cache(maxsize=512)
def _parse(path: str) -> ast.Module | None:
    try:
        if os.path.getsize(path) > MAX_SOURCE_BYTES:
            return None
        with open(path, "rb") as fh:
            return ast.parse(fh.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None


class _Module:
    """Module-level names of one source file: definitions, imports, aliases."""

    def __init__(self, name: str, path: str, tree: ast.Module) -> None:
        self.name = name
        self.path = path
        self.is_package = path.endswith("__init__.py")
        self.defs: dict[str, ast.stmt] = {}
        self.imports: dict[str, str] = {}  # local name -> module or module.qualname
        self.aliases: dict[str, str] = {}  # X = Y (a name)
        self.stars: list[str] = []  # from M import *
        self.tree = tree
        for stmt in _toplevel(tree.body):
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defs[stmt.name] = stmt
            elif isinstance(stmt, ast.Import):
                for a in stmt.names:
                    local = a.asname or a.name.split(".")[0]
                    self.imports[local] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(stmt, ast.ImportFrom):
                src = self._absolute(stmt.module, stmt.level)
                for a in stmt.names:
                    if a.name == "*":
                        self.stars.append(src)
                    else:
                        self.imports[a.asname or a.name] = f"{src}.{a.name}"
            elif isinstance(stmt, ast.Assign) and isinstance(stmt.value, (ast.Name,
                                                                          ast.Attribute)):
                dotted = _dotted(stmt.value)
                for t in stmt.targets:
                    if isinstance(t, ast.Name) and dotted:
                        self.aliases[t.id] = dotted

    def _absolute(self, module: str | None, level: int) -> str:
        if not level:
            return module or ""
        pkg = self.name.split(".")
        if not self.is_package:
            pkg = pkg[:-1]
        pkg = pkg[: len(pkg) - (level - 1)] if level > 1 else pkg
        return ".".join([*pkg, module] if module else pkg)

    def resolve(self, name: str) -> str | None:
        """module.qualname that a module-level ``name`` refers to (None: a builtin)."""
        if name in self.defs:
            return f"{self.name}.{name}"
        if name in self.imports:
            return self.imports[name]
        if name in self.aliases:
            head, _, rest = self.aliases[name].partition(".")
            base = self.resolve(head) if head != name else None
            if base is None:
                return None
            return f"{base}.{rest}" if rest else base
        return self._star(name)

    def _star(self, name: str) -> str | None:
        """A name from ``from M import *``: M's own name when M's source defines or
        imports it; for a compiled M (no source) the only candidate is M itself."""
        if name.startswith("_"):
            return None
        compiled = []
        for src in self.stars:
            other = _module(src) if src != self.name else None
            if other is None:
                compiled.append(src)
            elif name in other.defs or name in other.imports or name in other.aliases:
                return f"{src}.{name}"
        return f"{compiled[0]}.{name}" if len(compiled) == 1 else None


def _toplevel(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run at import, flattening if/try blocks (both branches)."""
    out: list[ast.stmt] = []
    for s in body:
        if isinstance(s, ast.If):
            if _is_main_guard(s):
                continue
            out += _toplevel(s.body) + _toplevel(s.orelse)
        elif isinstance(s, ast.Try):
            out += _toplevel(s.body)
            for h in s.handlers:
                out += _toplevel(h.body)
            out += _toplevel(s.orelse) + _toplevel(s.finalbody)
        else:
            out.append(s)
    return out


def _is_main_guard(s: ast.If) -> bool:
    t = s.test
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name)
            and t.left.id == "__name__")


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@lru_cache(maxsize=1024)
def _module(name: str) -> _Module | None:
    path = _find_file(name)
    if path is None:
        return None
    tree = _parse(path)
    return None if tree is None else _Module(name, path, tree)


def _locate(module: str, qualname: str, hops: int = 0) -> tuple[_Module, ast.stmt,
                                                                 str] | None:
    """(defining module, statement, canonical name) of ``module.qualname``."""
    if hops > 8:
        return None
    head, _, rest = qualname.partition(".")
    mod = _module(module)
    if mod is None:
        return None
    if head in mod.defs:
        node = mod.defs[head]
        for part in rest.split(".") if rest else ():
            if not isinstance(node, ast.ClassDef):
                return None
            nested = [s for s in node.body if isinstance(s, (ast.ClassDef, ast.FunctionDef,
                                                            ast.AsyncFunctionDef))
                      and s.name == part]
            if not nested:
                return None
            node = nested[0]
        return mod, node, f"{module}.{qualname}"
    target = mod.resolve(head)
    if target is None:
        sub = f"{module}.{head}"
        if _find_file(sub) is not None and rest:
            return _locate(sub, rest, hops + 1)
        if head in _bound_names(mod):
            return None  # bound at top level by something we do not follow
        target = _injected(module, head)
        if target is None:
            return None
    if _find_file(target) is not None:  # a module
        return _locate(target, rest, hops + 1) if rest else None
    tmod, _, tname = target.rpartition(".")
    return _locate(tmod, f"{tname}.{rest}" if rest else tname, hops + 1)


def _knowledge_judge() -> effects.Judge:
    from mlwarden.scan.knowledge import allowlist
    from mlwarden.scan.knowledge.lookup import danger_of

    def dangerous(name: str) -> bool:
        mod, _, qual = name.rpartition(".")
        return danger_of(mod, qual) is not None if mod else False

    def allowed_call(name: str) -> bool:
        hit = allowlist.NAMES.get(name)
        return hit is not None and bool(hit.uses & allowlist.C)

    return effects.Judge(dangerous, allowed_call, _follow)


_JUDGE: effects.Judge | None = None


def _judge() -> effects.Judge:
    global _JUDGE
    if _JUDGE is None:
        _JUDGE = _knowledge_judge()
    return _JUDGE


def _follow(target: str, depth: int) -> str | None:
    """Purity of calling ``target`` from a library body: a function's body, or a class's
    ``__init__`` and ``__new__``."""
    mod, _, qual = target.rpartition(".")
    found = _locate(mod, qual) if mod else None
    if found is None:
        return f"calls {target}, whose source was not found"
    m, node, key = found
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        scope = _scope(m, None, node)
        return _judge().function(effects.FunctionRef(node, scope, key), depth)
    if isinstance(node, ast.ClassDef):
        for hook in ("__new__", "__init__", "__post_init__"):
            why = _hook(m, node, hook, depth)
            if why is not None:
                return why
        return None
    return f"calls {target}, which is not a function or class"


def _scope(m: _Module, cls: ast.ClassDef | None,
           fn: ast.FunctionDef | ast.AsyncFunctionDef) -> effects.Scope:
    args = fn.args.posonlyargs + fn.args.args
    self_name = args[0].arg if cls is not None and args else None

    def method(name: str, bases_only: bool) -> effects.FunctionRef | None:
        if cls is None:
            return None
        for owner_mod, owner in _mro(m, cls)[1 if bases_only else 0:]:
            if owner is None:
                return None
            for s in owner.body:
                if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name:
                    return effects.FunctionRef(s, _scope(owner_mod, owner, s),
                                               f"{owner_mod.name}.{owner.name}.{name}")
        return None

    return effects.Scope(m.name, m.resolve, method, self_name)


def _mro(m: _Module, cls: ast.ClassDef, depth: int = 0
         ) -> list[tuple[_Module, ast.ClassDef | None]]:
    """The class and its bases, depth first; (module, None) marks a base that cannot be
    read (its hooks are unknown)."""
    out: list[tuple[_Module, ast.ClassDef | None]] = [(m, cls)]
    if depth > 8:
        return [*out, (m, None)]
    for b in cls.bases:
        dotted = _dotted(b)
        if dotted is None:
            if isinstance(b, ast.Subscript):  # Generic[T], Base[X]
                dotted = _dotted(b.value)
            if dotted is None:
                out.append((m, None))
                continue
        head, _, rest = dotted.partition(".")
        target = m.resolve(head)
        full = (f"{target}.{rest}" if rest else target) if target else f"builtins.{dotted}"
        if full in _PURE_BASES or full.startswith(("typing.", "collections.abc.",
                                                    "_collections_abc.")):
            continue
        mod, _, qual = full.rpartition(".")
        found = _locate(mod, qual)
        bnode = found[1] if found is not None else None
        if found is None or not isinstance(bnode, ast.ClassDef):
            out.append((m, None))
            continue
        for item in _mro(found[0], bnode, depth + 1):
            if item not in out:
                out.append(item)
    return out


def _hook(m: _Module, cls: ast.ClassDef, hook: str, depth: int) -> str | None:
    """Purity of the first definition of ``hook`` along the bases."""
    for owner_mod, owner in _mro(m, cls):
        if owner is None:
            return f"{cls.name}: a base class cannot be read from source"
        for s in owner.body:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == hook:
                ref = effects.FunctionRef(s, _scope(owner_mod, owner, s),
                                          f"{owner_mod.name}.{owner.name}.{hook}")
                return _judge().function(ref, depth)
            if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == hook
                                                 for t in s.targets):
                if isinstance(s.value, ast.Constant) and s.value.value is None:
                    return None  # __hash__ = None: the hook does not exist
                return f"{owner.name}.{hook} is assigned, not defined"
    return None


def _defines(m: _Module, cls: ast.ClassDef, hook: str) -> bool:
    for _owner_mod, owner in _mro(m, cls):
        if owner is None:
            return True  # unknown base: assume it may
        if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == hook
               for s in owner.body):
            return True
    return False


def _import_effects(m: _Module) -> str | None:
    """A dangerous call in the module's own top-level code (importing it runs that)."""
    judge = _judge()
    for stmt in _toplevel(m.tree.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Call):
                dotted = _dotted(sub.func)
                if dotted is None:
                    continue
                head, _, rest = dotted.partition(".")
                target = m.resolve(head) or f"builtins.{head}"
                full = f"{target}.{rest}" if rest else target
                if full not in effects._PURE_DESPITE_KB and judge.is_dangerous(full):
                    return f"importing {m.name} calls {full}"
    return None


def is_module(name: str) -> bool:
    return _find_file(name) is not None


def has_module_getattr(name: str) -> bool:
    """A module-level __getattr__ (or a star import) serves names its source does not
    show."""
    m = _module(name)
    return m is None or "__getattr__" in m.defs or bool(m.stars)


@lru_cache(maxsize=4096)
def canonical(module: str, qualname: str) -> str | None:
    """module.qualname of the statement that defines ``module.qualname`` (re-exports and
    aliases followed), or None when the source cannot be read. An import from a module
    without source (``from os import system as _sys``: posix is compiled) ends at the
    name it imports."""
    found = _locate(module, qualname)
    if found is not None:
        return found[2]
    return _import_target(module, qualname, 0)


def _import_target(module: str, qualname: str, hops: int) -> str | None:
    mod = _module(module)
    if mod is None or hops > 8:
        return None
    head, _, rest = qualname.partition(".")
    target = mod.resolve(head)
    if target is None and head not in _bound_names(mod):
        target = _injected(module, head)  # os.system assigned in from another module
    if target is None or target == f"{module}.{head}":
        return None
    full = f"{target}.{rest}" if rest else target
    tmod, _, tname = full.rpartition(".")
    if _module(tmod) is not None and tmod != module:
        return _import_target(tmod, tname, hops + 1) or full
    return full


@lru_cache(maxsize=4096)
def classify(module: str, qualname: str) -> Installed | None:
    """What ``module.qualname`` is in the installed sources, or None if not found."""
    found = _locate(module, qualname)
    if found is None:
        return None
    m, node, key = found
    why = _import_effects(m)
    if why is None and m.name != module:
        origin = _module(module)
        why = _import_effects(origin) if origin is not None else None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return Installed("function", False, False, why or f"function {key}")
    if not isinstance(node, ast.ClassDef):
        return Installed("other", False, False, why or f"{key} is not a class")
    if why is not None:
        return Installed("class", False, False, why)
    assert isinstance(node, ast.ClassDef)
    hooks = effects.class_hooks(_defines(m, node, "__setstate__"))
    if not _defines(m, node, "__hash__"):
        # Without an explicit __hash__ (defining __eq__ alone makes a class unhashable)
        # instances never become dict keys or set members: __eq__ cannot run.
        hooks = tuple(h for h in hooks if h not in ("__hash__", "__eq__"))
    for hook in hooks:
        why = _hook(m, node, hook, 0)
        if why is not None:
            return Installed("class", False, False, why)
    setattr_ok = _hook(m, node, "__setattr__", 0) is None
    items_ok = all(_hook(m, node, h, 0) is None for h in effects.ITEM_HOOKS)
    return Installed("class", True, setattr_ok,
                     f"{key}: reconstruction hooks are pure (read from source)", items_ok)


class _RoleCalls(ast.NodeTransformer):
    """Replaces calls of a parameter and ``X.__new__(param, ...)`` by a constant, noting
    which parameter each call uses: what remains must be pure."""

    def __init__(self, params: list[str]) -> None:
        self.params = params
        self.local_param: dict[str, str] = {}  # x = param
        self.invokes: set[int] = set()
        self.constructs: set[int] = set()

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id in self.params:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.local_param[t.id] = node.value.id
        return self.generic_visit(node)

    def _param(self, node: ast.expr) -> int | None:
        if isinstance(node, ast.Name):
            name = self.local_param.get(node.id, node.id)
            if name in self.params:
                return self.params.index(name)
        return None

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        i = self._param(node.func)
        if i is not None:
            self.invokes.add(i)
            return ast.copy_location(ast.Constant(None), node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "__new__" and node.args:
            j = self._param(node.args[0])
            if j is not None:
                self.constructs.add(j)
                return ast.copy_location(ast.Constant(None), node)
        return node


def roles_of(module: str, qualname: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(arguments called, arguments instantiated) of a pickle entry-point function whose
    body is otherwise pure, or None (not found, not a function, or effects)."""
    found = _locate(module, qualname)
    if found is None:
        return None
    m, node, key = found
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    params = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    rc = _RoleCalls(params)
    # Assignments first (x = param), then the calls.
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign):
            rc.visit_Assign(sub)
    import copy

    clone = rc.visit(copy.deepcopy(node))
    assert isinstance(clone, (ast.FunctionDef, ast.AsyncFunctionDef))
    ast.fix_missing_locations(clone)
    why = _judge().function(effects.FunctionRef(clone, _scope(m, None, clone),
                                                key + "#roles"))
    if why is not None:
        return None
    return tuple(sorted(rc.invokes)), tuple(sorted(rc.constructs))


# ------------------------------------------------------------ names assigned from elsewhere
#
# ``find_class(M, X)`` imports M (its parent packages first) and reads ``M.X``. Besides M's
# own statements, X can be put there by a module that the import of M runs: gensim 4's
# ``fasttext.py`` does ``keyedvectors.FastTextKeyedVectors = FastTextKeyedVectors``, and
# ``gensim/__init__.py`` imports ``gensim.models``, which imports ``fasttext``. The import
# closure below is the set of modules of M's own top-level package whose top-level code
# runs when M is imported (top-level imports of M and its parent packages, followed
# transitively inside that package; both branches of if/try).

MAX_CLOSURE_MODULES = 400
MAX_CLOSURE_BYTES = 4 << 20
_IMPORT_MACHINERY = frozenset({"modules", "meta_path", "path_hooks", "__path__"})
_DYNAMIC_BINDERS = frozenset({"globals", "vars", "exec", "eval", "__import__"})


@dataclass(frozen=True)
class _Closure:
    modules: tuple[str, ...]
    # target module -> attribute -> values assigned at top level (canonical name, or None
    # when the value is not a name)
    injections: dict[str, dict[str, tuple[str | None, ...]]]
    # target module -> attributes assigned inside functions (may exist after import)
    nested: dict[str, frozenset[str]]
    dynamic: str | None  # why the closure does not prove what M lacks


def _bound_names(m: _Module) -> frozenset[str]:
    """Every name the module's own code can bind at module level: definitions, imports,
    assignments of any value (also in loops, ``with``, walrus, ``match``), and ``global``
    declarations in its functions."""
    return _bound_names_of(m.path, m.tree)


@lru_cache(maxsize=256)
def _bound_names_of(path: str, tree: ast.Module) -> frozenset[str]:
    del path  # cache key only
    names: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if top:
                    names.add(child.name)
                visit(child, False)
            elif isinstance(child, ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.Global):
                names.update(child.names)
            elif top and isinstance(child, (ast.Import, ast.ImportFrom)):
                for a in child.names:
                    names.add(a.asname or a.name.split(".")[0])
            elif top and isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif top and isinstance(child, (ast.MatchAs, ast.MatchStar)) and child.name:
                names.add(child.name)
            else:
                visit(child, top)

    visit(tree, True)
    return frozenset(names)


def _module_of(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module with source."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if _find_file(cand) is not None:
            return cand
    return None


@lru_cache(maxsize=256)
def _closure(module: str) -> _Closure:
    top = module.split(".")[0]
    parts = module.split(".")
    queue = [".".join(parts[: i + 1]) for i in range(len(parts))]
    seen: list[str] = []
    injections: dict[str, dict[str, list[str | None]]] = {}
    nested: dict[str, set[str]] = {}
    dynamic: str | None = None
    budget = MAX_CLOSURE_BYTES
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        if len(seen) >= MAX_CLOSURE_MODULES:
            dynamic = f"importing {module} runs more than {MAX_CLOSURE_MODULES} modules"
            break
        seen.append(name)
        m = _module(name)
        if m is None:
            if _find_file(name) is not None or _compiled(name):
                dynamic = f"{name} has no readable source"
            continue
        budget -= len(m.path) and os.path.getsize(m.path)
        if budget < 0:
            dynamic = f"importing {module} runs more than {MAX_CLOSURE_BYTES >> 20} MiB " \
                      "of source"
            break
        for target in [*m.imports.values(), *m.stars]:
            if target.split(".")[0] != top:
                continue
            found = _module_of(target)
            if found is None:
                continue
            fparts = found.split(".")
            queue += [".".join(fparts[: i + 1]) for i in range(len(fparts))]
        why = _scan_closure_module(m, injections, nested)
        dynamic = dynamic or why
    return _Closure(tuple(seen),
                    {k: {a: tuple(dict.fromkeys(v)) for a, v in d.items()}
                     for k, d in injections.items()},
                    {k: frozenset(v) for k, v in nested.items()}, dynamic)


def _scan_closure_module(m: _Module, injections: dict[str, dict[str, list[str | None]]],
                         nested: dict[str, set[str]]) -> str | None:
    """Records ``module_ref.X = value`` assignments; says why the module may change modules
    in ways this does not follow (the import system's state, ``setattr`` on a module)."""
    toplevel = {id(s) for s in _toplevel(m.tree.body)}
    why: str | None = None

    def module_ref(node: ast.expr) -> str | None:
        dotted = _dotted(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        base = m.resolve(head)
        full = (f"{base}.{rest}" if rest else base) if base else None
        return full if full is not None and _find_file(full) is not None else None

    def walk(node: ast.AST, top: bool) -> None:
        nonlocal why
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and top and _is_main_guard(child):
                continue  # runs as a program, never on import
            if isinstance(child, ast.stmt):
                child_top = top and id(child) in toplevel
            else:
                child_top = top and not isinstance(child, ast.Lambda)
            if isinstance(child, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if not (isinstance(sub, ast.Attribute)
                                and isinstance(sub.ctx, ast.Store)):
                            continue
                        into = module_ref(sub.value)
                        if into is None:
                            continue
                        if child_top and isinstance(child, ast.Assign) and sub is t:
                            injections.setdefault(into, {}).setdefault(
                                sub.attr, []).append(_value_name(m, child.value))
                        else:
                            nested.setdefault(into, set()).add(sub.attr)
            elif isinstance(child, ast.Attribute) and child.attr in _IMPORT_MACHINERY:
                if child.attr != "modules" or _dotted(child.value) in ("sys", "_sys"):
                    why = why or f"{m.name} uses {_dotted(child) or child.attr}"
            elif isinstance(child, ast.Name) and child.id == "__path__":
                why = why or f"{m.name} uses __path__"
            elif isinstance(child, ast.Call) and isinstance(child.func, ast.Name) \
                    and child.func.id in ("setattr", "delattr") and child.args \
                    and module_ref(child.args[0]) is not None:
                why = why or f"{m.name} calls {child.func.id} on a module"
            walk(child, child_top)

    walk(m.tree, True)
    return why


def _value_name(m: _Module, value: ast.expr) -> str | None:
    dotted = _dotted(value)
    if dotted is None:
        return None
    head, _, rest = dotted.partition(".")
    base = m.resolve(head)
    if base is None:
        return None
    return f"{base}.{rest}" if rest else base


def _injected(module: str, name: str) -> str | None:
    """What another module of the package assigns to ``module.name`` at import time, when
    that is exactly one name (and nothing else may assign it)."""
    cl = _closure(module)
    values = cl.injections.get(module, {}).get(name, ())
    if len(values) != 1 or values[0] is None or name in cl.nested.get(module, ()):
        return None
    return values[0]


def _entries(module: str) -> bool:
    """Whether any search root holds something the import system could load as
    ``module`` (a package directory, a compiled extension, a ``.pyc``), source or not."""
    *pkg, last = module.split(".")
    for root in (*_EXTRA_ROOTS, *_installed_roots()):
        d = os.path.join(root, *pkg)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        if any(n == last or n.startswith(last + ".") for n in names):
            return True
    return False


def _compiled(module: str) -> bool:
    """A module the import system could load without source (an extension, a .pyc)."""
    *pkg, last = module.split(".")
    for root in (*_EXTRA_ROOTS, *_installed_roots()):
        try:
            names = os.listdir(os.path.join(root, *pkg))
        except OSError:
            continue
        if any(n.startswith(last + ".") and not n.endswith(".py") for n in names):
            return True
    return False


def _dynamic_module(m: _Module) -> str | None:
    """Why the module's own code may bind names its statements do not show."""
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _DYNAMIC_BINDERS:
            return f"{m.name} calls {node.func.id}()"
        if isinstance(node, ast.Name) and node.id == "__getattr__":
            return f"{m.name} defines __getattr__"
    if "__getattr__" in m.defs:
        return f"{m.name} defines __getattr__"
    if m.stars:
        return f"{m.name} imports * from {', '.join(m.stars)}"
    return None


def version(top: str) -> str | None:
    """The version of the top-level package whose source is read: its ``__version__``
    constant, else the installed distribution's metadata (never imported)."""
    m = _module(top)
    if m is not None:
        for stmt in _toplevel(m.tree.body):
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str) and any(
                        isinstance(t, ast.Name) and t.id == "__version__"
                        for t in stmt.targets):
                return stmt.value.value
        if not m.path.startswith(tuple(os.path.join(r, "") for r in _EXTRA_ROOTS)):
            from importlib import metadata

            try:
                return metadata.version(top)
            except (metadata.PackageNotFoundError, ValueError):
                return None
    return None


@lru_cache(maxsize=1024)
def undefined(module: str, qualname: str) -> str | None:
    """Why ``find_class(module, qualname)`` raises with the installed library, when its
    source proves it: the module exists and nothing binds the name, or the library is
    installed and has no such module. None when that is not proven (the library is not
    installed, or names may be bound in ways the source does not show)."""
    top = module.split(".")[0]
    if _find_file(top) is None:
        return None  # not installed: what it would define is unknown
    ver = version(top)
    lib = f"{top} {ver}" if ver else f"the installed {top}"
    head = qualname.split(".")[0]
    m = _module(module)
    if m is None:
        if _find_file(module) is not None or _entries(module):
            return None  # present but unreadable (compiled, too large, syntax)
        parts = module.split(".")
        anc = next(".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                   if _find_file(".".join(parts[:i])) is not None)
        child = f"{anc}.{parts[len(anc.split('.'))]}"
        if _entries(child) or _closure(anc).dynamic is not None:
            return None
        if _module(anc) is None:
            return None
        return f"{lib} has no module {child}"
    if head in _bound_names(m) or head in m.defs or head in m.imports or head in m.aliases:
        return None
    if _dynamic_module(m) is not None or _entries(f"{module}.{head}"):
        return None
    cl = _closure(module)
    if cl.dynamic is not None or head in cl.injections.get(module, {}) \
            or head in cl.nested.get(module, ()):
        return None
    return f"{lib} does not define {module}.{head}"
