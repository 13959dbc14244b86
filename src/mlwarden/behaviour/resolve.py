"""Name resolution and constant folding over a parsed module, both bounded.

``qualify`` turns an expression into the dotted name it refers to (``o.system`` after
``import os as o`` -> ``os.system``; ``getattr(__import__("o"+"s"), "system")`` too).
``fold`` turns an expression into the string it builds, as far as that is knowable without
running anything: concatenation, f-strings, joins, ``chr`` lists, slicing, path joins and
the usual encodings (base64, hex, rot13, zlib). Unknown pieces become ``{}``.

The value model behind both is small and bounded: a name stands for the last expression
assigned to it in its scope; a literal container (``{"go": system}``, ``[os.system]``, also
grown by ``d[k] = v``, ``.append``, ``.update``) for its items; a loop variable for the
items of what it iterates (an ``Element``); a module's ``__dict__`` / ``vars(module)`` for
its attributes. ``qualify_all`` lists every name an expression may stand for when one
answer is not knowable (``for fn in [os.system, print]: fn(...)``).
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import posixpath
import zlib
from collections.abc import Callable, Iterable

MAX_DEPTH = 24  # nesting of names and calls followed by one qualify/fold
MAX_STR = 1 << 16  # longest string folding builds
MAX_STEPS = 2_000  # nodes visited by one top-level fold
MAX_ITEMS = 256  # items of one container the value model keeps
MAX_CANDIDATES = 16  # names one expression may stand for (qualify_all)
UNKNOWN = "{}"

BUILTIN_NAMES = frozenset(dir(builtins))
# Modules that are aliases of others for our purposes.
_MODULE_ALIASES = {"posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path",
                   "_io": "io", "_pickle": "pickle", "__builtin__": "builtins"}
_CODEC_ROT13 = frozenset({"rot13", "rot_13", "rot-13"})
_HOME_VARS = frozenset({"HOME", "USERPROFILE"})
_SITE_DIRS = frozenset({"site.getsitepackages", "site.getusersitepackages",
                        "sysconfig.get_paths", "distutils.sysconfig.get_python_lib",
                        "sysconfig.get_path"})

Env = dict[str, "ast.expr | None"]  # None marks a local whose value is not tracked
Container = ast.Dict | ast.List | ast.Tuple | ast.Set
_CONTAINERS = (ast.Dict, ast.List, ast.Tuple, ast.Set)
_GROW_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})


class Element(ast.expr):
    """Synthetic node for a loop variable: one item of ``iterable``; with ``index`` the
    index-th part of a tuple item (``for k, v in d.items()``). Lives only in environments."""

    _fields = ("iterable", "index")

    def __init__(self, iterable: ast.expr, index: int | None) -> None:
        super().__init__()
        self.iterable = iterable
        self.index = index


def normalise(q: str) -> str:
    head, _, rest = q.partition(".")
    head = _MODULE_ALIASES.get(head, head)
    q = f"{head}.{rest}" if rest else head
    if q.startswith("builtins.") and q.count(".") == 1:
        return q[len("builtins."):]
    if q in ("io.open", "codecs.open"):
        return q
    return q


def collect_env(body: Iterable[ast.stmt], env: Env) -> None:
    """Record simple assignments of one scope (not descending into nested defs/classes).

    Later assignments win; ``x += y`` composes with the previous value, so strings built
    piecewise still fold."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            env[stmt.name] = None
            continue
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                _bind(target, stmt.value, env)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            _bind(stmt.target, stmt.value, env)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            prev = env.get(stmt.target.id)
            if prev is not None:
                env[stmt.target.id] = ast.copy_location(
                    ast.BinOp(left=prev, op=stmt.op, right=stmt.value), stmt)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            bind_loop(stmt.target, stmt.iter, env)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            _grow_by_call(stmt.value, env)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    _bind(item.optional_vars, item.context_expr, env)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and not isinstance(stmt, ast.ClassDef):
                collect_env(inner, env)
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                collect_env(handler.body, env)


def _bind(target: ast.expr, value: ast.expr, env: Env) -> None:
    if isinstance(target, ast.Name):
        env[target.id] = _as_container(value) or value
    elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        old = env.get(target.value.id)
        idx = _const_int(target.slice)
        if isinstance(old, (ast.List, ast.Tuple)) and idx is not None \
                and -len(old.elts) <= idx < len(old.elts):
            elts = list(old.elts)
            elts[idx] = value
            env[target.value.id] = ast.copy_location(ast.List(elts=elts, ctx=ast.Load()), old)
        else:
            _grow(target.value.id, env, [(target.slice, value)])
    elif isinstance(target, (ast.Tuple, ast.List)):
        if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
            for t, v in zip(target.elts, value.elts, strict=True):
                _bind(t, v, env)
        else:
            _bind_unknown(target, env)


class Instance(ast.expr):
    """Synthetic node for ``self`` / ``cls`` in a method of the same-file class ``cls``."""

    _fields = ("cls",)

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls = cls


def bind_loop(target: ast.expr, iterable: ast.expr, env: Env) -> None:
    """``for target in iterable``: the target stands for the iterable's items."""
    if isinstance(target, ast.Name):
        env[target.id] = ast.copy_location(Element(iterable=iterable, index=None), target)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for i, t in enumerate(target.elts):
            if isinstance(t, ast.Name):
                env[t.id] = ast.copy_location(Element(iterable=iterable, index=i), t)
            else:
                _bind_unknown(t, env)
    else:
        _bind_unknown(target, env)


def _as_container(value: ast.expr) -> Container | None:
    """``dict(k=v)`` / ``list()`` / ``tuple()`` / ``set()`` as the literal they build."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and not value.args:
        if value.func.id == "dict":
            return ast.copy_location(ast.Dict(
                keys=[ast.Constant(k.arg) for k in value.keywords if k.arg],
                values=[k.value for k in value.keywords if k.arg]), value)
        if not value.keywords and value.func.id in ("list", "tuple", "set"):
            return ast.copy_location(ast.List(elts=[], ctx=ast.Load()), value)
    return None


def _grow(name: str, env: Env, pairs: list[tuple[ast.expr | None, ast.expr]]) -> None:
    """Items added to the container bound to ``name`` (a copy: the tree is never changed).
    For a dict the pairs are (key, value); for a list the key is None."""
    old = env.get(name)
    if isinstance(old, ast.Dict):
        keys = [*old.keys, *(k for k, _ in pairs)][-MAX_ITEMS:]
        values = [*old.values, *(v for _, v in pairs)][-MAX_ITEMS:]
        env[name] = ast.copy_location(ast.Dict(keys=keys, values=values), old)
    elif isinstance(old, (ast.List, ast.Tuple, ast.Set)):
        elts = [*old.elts, *(v for _, v in pairs)][:MAX_ITEMS]
        env[name] = ast.copy_location(ast.List(elts=elts, ctx=ast.Load()), old)


def _grow_by_call(call: ast.Call, env: Env) -> None:
    """``d.update(...)``, ``d.setdefault(k, v)``, ``l.append(v)``, ``l.extend([...])``."""
    f = call.func
    if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
            and f.attr in _GROW_METHODS):
        return
    name, args = f.value.id, call.args
    pairs: list[tuple[ast.expr | None, ast.expr]] = []
    if f.attr in ("append", "add") and len(args) == 1:
        pairs = [(None, args[0])]
    elif f.attr == "insert" and len(args) == 2:
        pairs = [(None, args[1])]
    elif f.attr == "extend" and len(args) == 1 and isinstance(args[0], (ast.List, ast.Tuple)):
        pairs = [(None, e) for e in args[0].elts]
    elif f.attr == "setdefault" and len(args) == 2:
        pairs = [(args[0], args[1])]
    elif f.attr == "update":
        if len(args) == 1 and isinstance(args[0], ast.Dict):
            pairs = [(k, v) for k, v in zip(args[0].keys, args[0].values, strict=True)
                     if k is not None]
        pairs += [(ast.Constant(k.arg), k.value) for k in call.keywords if k.arg]
    if pairs:
        _grow(name, env, pairs)


def _bind_unknown(target: ast.expr, env: Env) -> None:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            env[node.id] = None


def _import_statements(body: list[ast.stmt]) -> Iterable[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in a module (functions and classes included), walking
    statements only: expressions hold no imports, and skipping them is most of the cost."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                stack.extend(reversed([x for x in inner if isinstance(
                    x, (ast.stmt, ast.excepthandler, ast.match_case))]))


def environ_bound(env: Env, known: set[str]) -> set[str]:
    """Names of ``env`` bound to an expression that mentions os.environ (or a name that
    does): the only names worth qualifying when looking for environment reads."""
    out: set[str] = set()
    for k, v in env.items():
        if v is None or isinstance(v, (ast.Constant, Element)):
            continue
        for sub in ast.walk(v):
            if (isinstance(sub, ast.Attribute) and sub.attr == "environ") or (
                    isinstance(sub, ast.Name) and (sub.id in known or sub.id == "environ")):
                out.add(k)
                break
    return out


class Resolver:
    """Per-module tables: import aliases, module-level assignments, defined names.

    ``module`` is the module's dotted name (``pkg.sub.mod``; for a package's ``__init__``
    the package name with ``package=True``) so that relative imports resolve to absolute
    names; ``parent`` is the resolver of the module whose globals exec'd code runs in."""

    def __init__(self, tree: ast.Module, module: str | None = None, package: bool = False,
                 parent: Resolver | None = None) -> None:
        self.module = module
        self.package = package
        self.aliases: dict[str, str] = dict(parent.aliases) if parent else {}
        self.star_modules: list[str] = list(parent.star_modules) if parent else []
        self.module_env: Env = dict(parent.module_env) if parent else {}
        self.defined: set[str] = set(parent.defined) if parent else set()
        for node in _import_statements(tree.body):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.aliases[a.asname] = normalise(a.name)
                    else:
                        top = a.name.split(".")[0]
                        self.aliases[top] = normalise(top)
            elif isinstance(node, ast.ImportFrom):
                base = self.absolute(node.module, node.level)
                if base is None:
                    continue
                mod = normalise(base)
                for a in node.names:
                    if a.name == "*":
                        self.star_modules.append(mod)
                    else:
                        self.aliases[a.asname or a.name] = normalise(f"{mod}.{a.name}")
        collect_env(tree.body, self.module_env)
        # Names that may stand for os.environ (the collector qualifies only these).
        self.environ_names = {k for k, v in self.aliases.items() if v in ("os", "os.environ")}
        self.environ_names |= environ_bound(self.module_env, self.environ_names)
        self.uses_ctypes: bool = parent.uses_ctypes if parent else any(
            v.split(".")[0] in ("ctypes", "_ctypes", "cffi") for v in self.aliases.values())

        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defined.add(stmt.name)
        self.classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
        self._attrs: dict[str, dict[str, tuple[ast.expr, Env]]] = {}  # built on first use
        self._steps = 0
        self._active: set[str] = set()  # names being folded (breaks self-reference)

    def child(self, tree: ast.Module) -> Resolver:
        """A resolver for code exec'd in this module's globals."""
        return Resolver(tree, self.module, self.package, parent=self)

    def absolute(self, module: str | None, level: int) -> str | None:
        """``from ..x import y`` -> the absolute module name of ``..x``, when known."""
        if level == 0:
            return module
        if self.module is None:
            return None
        parts = self.module.split(".")
        if not self.package:
            parts = parts[:-1]
        if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
            return None
        base = parts[: len(parts) - (level - 1)]
        if module:
            base.append(module)
        return ".".join(base) if base else None
    # ------------------------------------------------------------------ lookup

    def lookup(self, name: str, env: Env | None) -> tuple[bool, ast.expr | None]:
        """(found, value): local scope first, then module scope."""
        if env is not None and name in env:
            return True, env[name]
        if name in self.module_env:
            return True, self.module_env[name]
        return False, None

    # ------------------------------------------------------------------ qualify

    def qualify(self, node: ast.expr, env: Env | None = None, depth: int = 0) -> str | None:
        if depth == 0:
            self._steps = 0
        self._steps += 1
        if depth > MAX_DEPTH or self._steps > MAX_STEPS:
            return None
        if isinstance(node, ast.Name):
            return self._qualify_name(node.id, env, depth)
        if isinstance(node, ast.Attribute):
            cls = self._instance(node.value, env)
            if cls is not None:  # self.run with self.run = os.system in __init__
                bound = self._instance_attr(cls, node.attr)
                return self.qualify(bound[0], bound[1], depth + 1) if bound else None
            base = self.qualify(node.value, env, depth + 1)
            return normalise(f"{base}.{node.attr}") if base else None
        if isinstance(node, ast.Call):
            return self._qualify_call(node, env, depth)
        if isinstance(node, ast.Subscript):
            item = self._item(node.value, node.slice, env, depth + 1)
            if item is not None:  # HOOKS["go"] with HOOKS = {"go": os.system}
                return self.qualify(item[0], item[1], depth + 1)
            base = self.qualify(node.value, env, depth + 1)
            key = self.fold(node.slice, env, depth + 1) if base else None
            if base is None or key is None or UNKNOWN in key:
                return None
            return self._qualify_key(base, key, env, depth)
        if isinstance(node, ast.NamedExpr):
            return self.qualify(node.value, env, depth + 1)
        if isinstance(node, Element):  # a loop variable: one answer only if all items agree
            names: list[str] = []
            self._qualify_all(node, env, depth + 1, names)
            return names[0] if len(names) == 1 else None
        return None

    def _qualify_key(self, base: str, key: str, env: Env | None, depth: int) -> str | None:
        """``base[key]`` where ``base`` names a namespace mapping."""
        if base == "sys.modules":
            return normalise(key)
        if base == "builtins":
            return normalise(f"builtins.{key}")
        if base.endswith(".__dict__"):  # os.__dict__["system"], vars(os)["system"]
            return normalise(f"{base[: -len('.__dict__')]}.{key}")
        if base in ("globals()", "locals()"):
            return self._qualify_name(key, env, depth + 1)
        return None

    def qualify_all(self, node: ast.expr, env: Env | None = None) -> list[str]:
        """Every name ``node`` may stand for (at most MAX_CANDIDATES): ``[q]`` when
        ``qualify`` knows the one answer, else the names of the container items or loop
        items it may be (``for fn in [os.system, print]: fn``)."""
        self._steps = 0
        out: list[str] = []
        self._qualify_all(node, env, 0, out)
        return out

    def _qualify_all(self, node: ast.expr, env: Env | None, depth: int, out: list[str]) -> None:
        if depth > MAX_DEPTH or len(out) >= MAX_CANDIDATES or self._steps > MAX_STEPS:
            return
        if not isinstance(node, Element):
            q = self.qualify(node, env, depth + 1)
            if q is not None:
                if q not in out:
                    out.append(q)
                return
        for alt, alt_env in self._alternatives(node, env, depth + 1):
            self._qualify_all(alt, alt_env, depth + 1, out)

    def leaves(self, node: ast.expr, env: Env | None = None) -> list[ast.expr]:
        """Names, attributes and lambdas ``node`` may stand for through assignments,
        containers and loop variables, where the value model stops (same-file functions):
        the call graph links ``HOOKS["go"]()`` and ``for f in [g]: f()`` to them."""
        self._steps = 0
        out: list[ast.expr] = []
        self._leaves(node, env, 0, out)
        return out

    def _leaves(self, node: ast.expr, env: Env | None, depth: int, out: list[ast.expr]) -> None:
        if depth > MAX_DEPTH or len(out) >= MAX_CANDIDATES:
            return
        alternatives = self._alternatives(node, env, depth + 1)
        if not alternatives:
            if isinstance(node, (ast.Name, ast.Attribute, ast.Lambda)):
                out.append(node)
            return
        for alt, alt_env in alternatives:
            self._leaves(alt, alt_env, depth + 1, out)

    # ------------------------------------------------------------------ values

    def _budget(self, depth: int) -> bool:
        self._steps += 1
        return depth <= MAX_DEPTH and self._steps <= MAX_STEPS

    def _follow(self, node: ast.expr, env: Env | None) -> tuple[ast.expr, Env | None] | None:
        """The expression a name (or ``self.attr``) is bound to, with the environment it
        is evaluated in."""
        if isinstance(node, ast.Attribute):
            cls = self._instance(node.value, env)
            return self._instance_attr(cls, node.attr) if cls is not None else None
        if not isinstance(node, ast.Name):
            return None
        found, value = self.lookup(node.id, env)
        if not found or value is None:
            return None
        return value, env if env is not None and node.id in env else None

    def _instance(self, node: ast.expr, env: Env | None) -> str | None:
        if isinstance(node, ast.Name) and env is not None:
            value = env.get(node.id)
            if isinstance(value, Instance):
                return value.cls
        return None

    def _instance_attr(self, cls: str, attr: str) -> tuple[ast.expr, Env] | None:
        """What ``self.attr`` was last assigned in ``cls`` or its same-file bases: class
        body assignments and ``self.attr = value`` in its methods (with that method's
        names). Methods themselves are not values (None)."""
        seen: set[str] = set()
        stack = [cls]
        while stack and len(seen) < 64:
            c = stack.pop(0)
            if c in seen or c not in self.classes:
                continue
            seen.add(c)
            table = self._attrs.get(c)
            if table is None:
                table = self._attrs[c] = _class_attrs(self.classes[c])
            if attr in table:
                return table[attr]
            stack.extend(b.id for b in self.classes[c].bases if isinstance(b, ast.Name))
        return None

    def _container(self, node: ast.expr, env: Env | None,
                   depth: int) -> tuple[Container, Env | None] | None:
        """The literal container ``node`` evaluates to, following names and items."""
        if not self._budget(depth):
            return None
        if isinstance(node, _CONTAINERS):
            return node, env
        if isinstance(node, ast.Name) and node.id not in self._active:
            bound = self._follow(node, env)
            if bound is None:
                return None
            self._active.add(node.id)
            try:
                return self._container(bound[0], bound[1], depth + 1)
            finally:
                self._active.discard(node.id)
        if isinstance(node, ast.Attribute):  # self.HOOKS
            bound = self._follow(node, env)
            return self._container(bound[0], bound[1], depth + 1) if bound else None
        if isinstance(node, ast.Call):
            built = _as_container(node)
            return (built, env) if built is not None else None
        if isinstance(node, ast.Subscript):  # CONFIG["hooks"]["go"]
            item = self._item(node.value, node.slice, env, depth + 1)
            return self._container(item[0], item[1], depth + 1) if item else None
        return None

    def _item(self, container: ast.expr, key: ast.expr, env: Env | None,
              depth: int) -> tuple[ast.expr, Env | None] | None:
        """``container[key]`` for a literal container and a known key, else None."""
        if not self._budget(depth):
            return None
        found = self._container(container, env, depth + 1)
        if found is None:
            return None
        c, c_env = found
        index = _const_int(key)
        if isinstance(c, ast.Dict):
            name = self.fold(key, env, depth + 1) if index is None else None
            if index is None and (name is None or UNKNOWN in name):
                return None
            for k, v in zip(reversed(c.keys), reversed(c.values), strict=True):
                if k is None:
                    return None  # {**other}: the key may come from there
                if index is not None and _const_int(k) == index:
                    return v, c_env
                if name is not None and isinstance(k, ast.Constant) and k.value == name:
                    return v, c_env
            return None
        if isinstance(c, (ast.List, ast.Tuple)) and index is not None \
                and not any(isinstance(e, ast.Starred) for e in c.elts) \
                and -len(c.elts) <= index < len(c.elts):
            return c.elts[index], c_env
        return None

    def _items(self, iterable: ast.expr, env: Env | None,
               depth: int) -> list[tuple[ast.expr, Env | None]]:
        """What iterating ``iterable`` yields, as far as literals tell (bounded)."""
        if not self._budget(depth):
            return []
        found = self._container(iterable, env, depth + 1)
        if found is not None:
            c, c_env = found
            elts = [k for k in c.keys if k is not None] if isinstance(c, ast.Dict) else [
                e for e in c.elts if not isinstance(e, ast.Starred)]
            return [(e, c_env) for e in elts[:MAX_ITEMS]]
        if isinstance(iterable, ast.Call):
            f, args = iterable.func, iterable.args
            if isinstance(f, ast.Attribute) and f.attr in ("values", "keys", "items") \
                    and not args:
                found = self._container(f.value, env, depth + 1)
                if found is None or not isinstance(found[0], ast.Dict):
                    return []
                d, d_env = found[0], found[1]
                pairs = [(k, v) for k, v in zip(d.keys, d.values, strict=True)
                         if k is not None][:MAX_ITEMS]
                if f.attr == "values":
                    return [(v, d_env) for _, v in pairs]
                if f.attr == "keys":
                    return [(k, d_env) for k, _ in pairs]
                return [(ast.Tuple(elts=[k, v], ctx=ast.Load()), d_env) for k, v in pairs]
            if isinstance(f, ast.Name) and len(args) == 1 and f.id in (
                    "list", "tuple", "set", "frozenset", "sorted", "reversed", "iter"):
                return self._items(args[0], env, depth + 1)
            if isinstance(f, ast.Name) and f.id == "enumerate" and args:
                return [(ast.Tuple(elts=[ast.Constant(i), e], ctx=ast.Load()), e_env)
                        for i, (e, e_env) in enumerate(self._items(args[0], env, depth + 1))]
            return []
        out: list[tuple[ast.expr, Env | None]] = []
        for alt, alt_env in self._alternatives(iterable, env, depth + 1):  # nested loops
            out.extend(self._items(alt, alt_env, depth + 1))
        return out[:MAX_ITEMS]

    def _alternatives(self, node: ast.expr, env: Env | None,
                      depth: int) -> list[tuple[ast.expr, Env | None]]:
        """The expressions ``node`` may stand for when it is not one known value."""
        if not self._budget(depth):
            return []
        if isinstance(node, Element):
            out: list[tuple[ast.expr, Env | None]] = []
            for item, i_env in self._items(node.iterable, env, depth + 1):
                if node.index is None:
                    out.append((item, i_env))
                    continue
                parts = self._container(item, i_env, depth + 1)
                if parts is not None and isinstance(parts[0], (ast.Tuple, ast.List)) \
                        and node.index < len(parts[0].elts):
                    out.append((parts[0].elts[node.index], parts[1]))
            return out
        if isinstance(node, ast.Name):
            bound = self._follow(node, env)
            return [bound] if bound is not None and node.id not in self._active else []
        if isinstance(node, ast.Subscript):  # HOOKS[k] with k unknown: any value
            return self._values(node.value, env, depth)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("get", "pop", "__getitem__"):
            return self._values(node.func.value, env, depth)
        if isinstance(node, ast.Attribute):  # self.hook; mods[i].system
            bound = self._follow(node, env)
            if bound is not None:
                return [bound]
            return [(ast.Attribute(value=alt, attr=node.attr, ctx=ast.Load()), alt_env)
                    for alt, alt_env in self._alternatives(node.value, env, depth + 1)]
        return []

    def _values(self, container: ast.expr, env: Env | None,
                depth: int) -> list[tuple[ast.expr, Env | None]]:
        found = self._container(container, env, depth + 1)
        if found is None:
            return []
        c, c_env = found
        vals = c.values if isinstance(c, ast.Dict) else [
            e for e in c.elts if not isinstance(e, ast.Starred)]
        return [(v, c_env) for v in vals[:MAX_ITEMS]]

    def _qualify_name(self, name: str, env: Env | None, depth: int) -> str | None:
        if name == "__builtins__":
            return "builtins"
        found, value = self.lookup(name, env)
        if env is not None and name in env:
            return self.qualify(value, env, depth + 1) if value is not None else None
        if name in self.aliases:
            return self.aliases[name]
        if found:
            return self.qualify(value, None, depth + 1) if value is not None else None
        if name in self.defined:
            return None
        if name in BUILTIN_NAMES:
            return name
        return None

    def _qualify_call(self, node: ast.Call, env: Env | None, depth: int) -> str | None:
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "__getitem__") \
                and node.args:
            item = self._item(f.value, node.args[0], env, depth + 1)
            if item is not None:  # HOOKS.get("go")
                return self.qualify(item[0], item[1], depth + 1)
            base = self.qualify(f.value, env, depth + 1)
            if base is not None and base.endswith(".__dict__"):  # os.__dict__.get("system")
                key = self.fold(node.args[0], env, depth + 1)
                return self._qualify_key(base, key, env, depth) \
                    if key and UNKNOWN not in key else None
        if isinstance(f, ast.Call) and node.args:  # operator.attrgetter("system")(os)
            inner = self.qualify(f.func, env, depth + 1)
            if inner in ("operator.attrgetter", "operator.methodcaller") and f.args:
                base = self.qualify(node.args[0], env, depth + 1)
                attr = self.fold(f.args[0], env, depth + 1)
                if base and attr and UNKNOWN not in attr:
                    return normalise(f"{base}.{attr}")
        func = self.qualify(node.func, env, depth + 1)
        if func is None:
            return None
        if func.endswith(".__getattribute__") and node.args:
            owner = func[: -len(".__getattribute__")]
            if owner in ("object", "type", "builtins.object", "builtins.type") \
                    and len(node.args) >= 2:
                base = self.qualify(node.args[0], env, depth + 1)
                attr = self.fold(node.args[1], env, depth + 1)
            else:
                base = owner
                attr = self.fold(node.args[0], env, depth + 1)
            if base and attr and UNKNOWN not in attr:
                return normalise(f"{base}.{attr}")
            return None
        if func in ("pkgutil.resolve_name", "pydoc.locate") and node.args:
            name = self.fold(node.args[0], env, depth + 1)
            if name and UNKNOWN not in name:
                return normalise(name.replace(":", "."))
            return None
        if func in ("functools.partial", "functools.partialmethod") and node.args:
            return self.qualify(node.args[0], env, depth + 1)  # partial(os.system, "id")()
        if func in ("__import__", "importlib.import_module", "importlib.__import__"):
            if node.args:
                name = self.fold(node.args[0], env, depth + 1)
                if name and UNKNOWN not in name:
                    return normalise(name)
            return None
        if func == "getattr" and len(node.args) >= 2:
            base = self.qualify(node.args[0], env, depth + 1)
            attr = self.fold(node.args[1], env, depth + 1)
            if base and attr and UNKNOWN not in attr:
                return normalise(f"{base}.{attr}")
            return None
        if func == "vars":  # the namespace mapping, as module.__dict__ spells it
            if not node.args:
                return "locals()"
            base = self.qualify(node.args[0], env, depth + 1)
            return f"{base}.__dict__" if base else None
        if func in ("globals", "locals"):
            return f"{func}()"
        return f"{func}()"

    # ------------------------------------------------------------------ fold

    def fold(self, node: ast.AST, env: Env | None = None, depth: int = 0) -> str | None:
        """The string ``node`` builds, with ``{}`` for unknown pieces; None if not a string."""
        if depth == 0:
            self._steps = 0
        self._steps += 1
        if depth > MAX_DEPTH or self._steps > MAX_STEPS:
            return None
        out = self._fold(node, env, depth)
        if out is not None and len(out) > MAX_STR:
            out = out[:MAX_STR]
        return out

    def _fold(self, node: ast.AST, env: Env | None, depth: int) -> str | None:
        d = depth + 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return node.value
            if isinstance(node.value, bytes):
                return node.value.decode("latin-1")
            return None
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    parts.append(self.fold(v.value, env, d) or UNKNOWN)
                else:
                    parts.append(self.fold(v, env, d) or "")
            return "".join(parts)
        if isinstance(node, ast.Name):
            found, value = self.lookup(node.id, env)
            if not found or value is None or node.id in self._active:
                return None  # unknown, or `x = x + y` folding into itself
            self._active.add(node.id)
            try:
                return self.fold(value, env if env is not None and node.id in env else None, d)
            finally:
                self._active.discard(node.id)
        if isinstance(node, ast.BinOp):
            return self._fold_binop(node, env, d)
        if isinstance(node, ast.Subscript):
            return self._fold_subscript(node, env, d)
        if isinstance(node, ast.Call):
            return self._fold_call(node, env, d)
        if isinstance(node, ast.NamedExpr):
            return self.fold(node.value, env, d)
        if isinstance(node, ast.Attribute) and self._instance(node.value, env) is not None:
            bound = self._follow(node, env)  # self.cmd = "..." in __init__
            return self.fold(bound[0], bound[1], d) if bound else None
        if isinstance(node, Element):  # a loop variable: known if every item folds alike
            texts = {self.fold(a, a_env, d) for a, a_env in self._alternatives(node, env, d)}
            return texts.pop() if len(texts) == 1 else None
        return None

    def _fold_binop(self, node: ast.BinOp, env: Env | None, d: int) -> str | None:
        left = self.fold(node.left, env, d)
        if isinstance(node.op, ast.Add):
            right = self.fold(node.right, env, d)
            if left is None and right is None:
                return None
            return (left or UNKNOWN) + (right or UNKNOWN)
        if isinstance(node.op, ast.Div):  # pathlib: Path(a) / "b"
            right = self.fold(node.right, env, d)
            if left is None and right is None:
                return None
            return f"{left or UNKNOWN}/{right or UNKNOWN}"
        if isinstance(node.op, ast.Mod) and left is not None:
            vals = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            folded = [self.fold(v, env, d) or UNKNOWN for v in vals[:64]]
            try:
                return left % tuple(folded)
            except (TypeError, ValueError, KeyError, OverflowError):
                return left.replace("%s", UNKNOWN)
        if isinstance(node.op, ast.Mult) and left is not None:
            if isinstance(node.right, ast.Constant) and isinstance(node.right.value, int):
                n = node.right.value
                if n >= 0 and len(left) * n <= MAX_STR:
                    return left * n
            return left
        return None

    def _fold_subscript(self, node: ast.Subscript, env: Env | None, d: int) -> str | None:
        if isinstance(node.value, ast.Call) and self.qualify(node.value.func, env, d) \
                in _SITE_DIRS:
            return "site-packages"  # site.getsitepackages()[0]
        base_q = self.qualify(node.value, env, d)
        if base_q == "os.environ":
            key = self.fold(node.slice, env, d)
            return "~" if key in _HOME_VARS else UNKNOWN
        value = self.fold(node.value, env, d)
        if value is None:
            return None
        sl = node.slice
        if isinstance(sl, ast.Slice):
            try:
                lo, hi, st = (_const_int(sl.lower), _const_int(sl.upper), _const_int(sl.step))
                return value[slice(lo, hi, st)]
            except (TypeError, ValueError):
                return None
        idx = _const_int(sl)
        if idx is not None and -len(value) <= idx < len(value):
            return value[idx]
        return None

    def _fold_call(self, node: ast.Call, env: Env | None, d: int) -> str | None:
        args = node.args
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            recv = node.func.value
            if method == "join" and args:
                if isinstance(recv, ast.Attribute) and recv.attr == "path":
                    return self._join_paths(args, env, d)  # os.path.join
                sep = self.fold(recv, env, d)
                if sep is not None and UNKNOWN not in sep:
                    pieces = self._fold_iterable(args[0], env, d)
                    if pieces is not None:
                        return sep.join(pieces)
            if method in ("format", "format_map"):
                fmt = self.fold(recv, env, d)
                if fmt is not None:
                    vals = [self.fold(a, env, d) or UNKNOWN for a in args]
                    try:
                        return fmt.format(*vals, **{k.arg: (self.fold(k.value, env, d)
                                                            or UNKNOWN)
                                                    for k in node.keywords if k.arg})
                    except (IndexError, KeyError, ValueError, AttributeError, TypeError):
                        return fmt
            if method in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "casefold"):
                s = self.fold(recv, env, d)
                if s is not None:
                    return s if args else str(getattr(s, method)())
            if method == "replace" and len(args) >= 2:
                s = self.fold(recv, env, d)
                a, b = self.fold(args[0], env, d), self.fold(args[1], env, d)
                if s is not None:
                    return s.replace(a, b) if a is not None and b is not None else s
            if method in ("encode", "expanduser", "resolve", "absolute", "as_posix",
                          "__str__", "strip", "joinpath", "with_suffix"):
                s = self.fold(recv, env, d)
                if s is not None and method == "joinpath":
                    return "/".join([s, *(self.fold(a, env, d) or UNKNOWN for a in args)])
                if s is not None:
                    return s
            if method == "decode":
                s = self.fold(recv, env, d)
                enc = self.fold(args[0], env, d) if args else None
                if s is not None and enc is not None and enc.lower() in _CODEC_ROT13:
                    return codecs.decode(s, "rot13")
                if s is not None:
                    return s
        q = self.qualify(node.func, env, d)
        if q is None:
            return None
        first = self.fold(args[0], env, d) if args else None
        if q in ("str", "os.fspath", "os.path.expanduser", "os.path.abspath", "os.path.realpath",
                 "os.path.normpath", "os.path.expandvars", "repr", "compile", "codecs.encode",
                 "bytes.decode", "str.lower", "io.BytesIO", "io.StringIO", "bytes.strip"):
            if q == "codecs.encode" and len(args) >= 2 and (
                    self.fold(args[1], env, d) or "").lower() in _CODEC_ROT13 and first:
                return codecs.encode(first, "rot13")
            return first
        if q in ("reversed", "list", "tuple") and first is not None:
            return first[::-1] if q == "reversed" else first
        if q in ("pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath", "os.path.join"):
            return self._join_paths(args, env, d) if args else None
        if q == "pathlib.Path.home":
            return "~"
        if q in ("pathlib.Path.cwd", "os.getcwd"):
            return "."
        if q in ("os.getenv", "os.environ.get"):
            if first in _HOME_VARS:
                return "~"
            default = self.fold(args[1], env, d) if len(args) > 1 else None
            return default if default is not None else UNKNOWN  # PKG_CONFIG or 'pkg-config'
        if q in _SITE_DIRS:
            return "site-packages"
        if q in ("tempfile.gettempdir", "tempfile.mkdtemp"):
            return "/tmp"
        if q in ("os.path.dirname", "os.path.basename"):
            if first is None:
                return None
            return (posixpath.dirname if q.endswith("dirname") else posixpath.basename)(first)
        if q == "chr" and args:
            n = _const_int(args[0])
            return chr(n) if n is not None and 0 <= n < 0x110000 else UNKNOWN
        if q in ("bytes", "bytearray") and args:
            pieces = self._fold_iterable(args[0], env, d)
            return "".join(pieces) if pieces is not None else first
        if q in ("bytes.fromhex", "bytearray.fromhex", "binascii.unhexlify", "binascii.a2b_hex"):
            return _decode(lambda s: bytes.fromhex(s), first)
        if q.startswith("base64.") or q.startswith("binascii.a2b_base64"):
            return _decode(lambda s: _b64(q, s), first)
        if q in ("zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress"):
            return _decode(lambda s: _decompress(q, s), first)
        if q == "codecs.decode" and len(args) >= 2:
            enc = (self.fold(args[1], env, d) or "").lower().replace("-", "_")
            if enc in ("zlib", "zlib_codec", "zip"):
                return _decode(lambda s: _decompress("zlib.decompress", s), first)
            if enc in ("bz2", "bz2_codec"):
                return _decode(lambda s: _decompress("bz2.decompress", s), first)
            if enc in _CODEC_ROT13:
                return codecs.decode(first, "rot13") if first is not None else None
            if enc in ("hex", "hex_codec"):
                return _decode(lambda s: bytes.fromhex(s), first)
            if enc in ("base64", "base64_codec"):
                return _decode(lambda s: _b64("base64.b64decode", s), first)
            return first
        return None

    def fold_items(self, node: ast.AST, env: Env | None = None) -> list[str] | None:
        """The strings of a list a name is bound to (a command built as a list)."""
        self._steps = 0
        if isinstance(node, ast.Name):
            found = self._container(node, env, 1)
            if found is None or not isinstance(found[0], (ast.List, ast.Tuple)):
                return None
            return [self.fold(e, found[1], 2) or UNKNOWN for e in found[0].elts[:32]]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.fold_items(node.left, env), self.fold_items(node.right, env)
            if left is None and right is None:
                return None
            return [*(left or [UNKNOWN]), *(right or [UNKNOWN])]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.fold(e, env, 1) or UNKNOWN for e in node.elts[:32]]
        return None

    def _join_paths(self, args: list[ast.expr], env: Env | None, d: int) -> str | None:
        parts = [self.fold(a, env, d) for a in args]
        if all(p is None for p in parts):
            return None
        out = ""
        for p in parts:
            p = UNKNOWN if p is None else p
            out = p if p.startswith("/") or not out else f"{out.rstrip('/')}/{p}"
        return out

    def _fold_iterable(self, node: ast.AST, env: Env | None, d: int) -> list[str] | None:
        """Pieces of a list/tuple, ``map(chr, [...])`` or ``(chr(c) for c in [...])``."""
        if not self._budget(d):  # ``x = [y for y in x]`` refers to itself
            return None
        if isinstance(node, ast.Name):
            found, value = self.lookup(node.id, env)
            return self._fold_iterable(value, env, d + 1) if found and value is not None else None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            out: list[str] = []
            for e in node.elts[:4096]:
                n = _const_int(e)
                if n is not None and 0 <= n < 0x110000:
                    out.append(chr(n))
                else:
                    out.append(self.fold(e, env, d) or UNKNOWN)
            return out
        if isinstance(node, ast.Call) and self.qualify(node.func, env, d) == "map" \
                and len(node.args) == 2 and self.qualify(node.args[0], env, d) == "chr":
            return self._fold_iterable(node.args[1], env, d + 1)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and len(node.generators) == 1:
            gen = node.generators[0]
            elt = node.elt
            if isinstance(elt, ast.Call) and self.qualify(elt.func, env, d) == "chr" \
                    and elt.args and isinstance(elt.args[0], ast.Name) \
                    and isinstance(gen.target, ast.Name) and elt.args[0].id == gen.target.id:
                return self._fold_iterable(gen.iter, env, d + 1)
            if isinstance(elt, ast.Name) and isinstance(gen.target, ast.Name) \
                    and elt.id == gen.target.id:
                return self._fold_iterable(gen.iter, env, d + 1)
        s = self.fold(node, env, d)
        return list(s) if s is not None else None


def _class_attrs(cls: ast.ClassDef) -> dict[str, tuple[ast.expr, Env]]:
    """Class attributes and ``self.x = value`` of one class's methods (last one wins)."""
    body_env: Env = {}
    collect_env(cls.body, body_env)
    out: dict[str, tuple[ast.expr, Env]] = {
        k: (v, body_env) for k, v in body_env.items() if v is not None}
    for stmt in cls.body:
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) or not stmt.args.args:
            continue
        me = stmt.args.args[0].arg
        assigns = [(t.attr, n.value) for n in _statements(stmt.body) if isinstance(n, ast.Assign)
                   for t in n.targets if isinstance(t, ast.Attribute)
                   and isinstance(t.value, ast.Name) and t.value.id == me]
        if not assigns:
            continue
        env: Env = {a.arg: None for a in [*stmt.args.posonlyargs, *stmt.args.args,
                                            *stmt.args.kwonlyargs]}
        env[me] = Instance(cls.name)
        collect_env(stmt.body, env)
        for attr, value in assigns:
            out[attr] = (value, env)
    return out


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Statements of one scope, through if/for/while/with/try, not into nested defs."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        if isinstance(stmt, ast.Try):
            for handler in stmt.handlers:
                yield from _statements(handler.body)


def _const_int(node: ast.AST | None) -> int | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _const_int(node.operand)
        return -v if v is not None else None
    return None


def _decode(fn: Callable[[str], bytes], text: str | None) -> str | None:
    if text is None or UNKNOWN in text:
        return None
    try:
        out = fn(text)
    except (ValueError, TypeError, binascii.Error, zlib.error, OSError, EOFError,
            LookupError):
        return None
    return bytes(out).decode("latin-1")


def _b64(q: str, text: str) -> bytes:
    raw = text.encode("latin-1")
    if "b32" in q:
        return base64.b32decode(raw)
    if "b16" in q:
        return base64.b16decode(raw, casefold=True)
    if "a85" in q:
        return base64.a85decode(raw)
    if "b85" in q:
        return base64.b85decode(raw)
    if "urlsafe" in q:
        return base64.urlsafe_b64decode(raw)
    return base64.b64decode(raw)


def _decompress(q: str, text: str) -> bytes:
    """Decompress constant data without letting a bomb expand past MAX_STR."""
    raw = text.encode("latin-1")
    if q.startswith("zlib"):
        return zlib.decompressobj().decompress(raw, MAX_STR)
    if q.startswith("gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, MAX_STR)
    if q.startswith("bz2"):
        import bz2

        return bz2.BZ2Decompressor().decompress(raw, MAX_STR)
    import lzma

    return lzma.LZMADecompressor().decompress(raw, MAX_STR)
