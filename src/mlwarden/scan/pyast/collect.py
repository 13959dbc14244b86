"""Walk a parsed module once and record behaviour events (network, secrets, processes,
exec, writes ...) with their line and the scope they run in, plus a same-file call graph so
that code reached at import time can be told apart from code that only runs when called."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass

from mlwarden.scan.pyast import catalog as cat
from mlwarden.scan.pyast.resolve import (
    UNKNOWN,
    Env,
    Instance,
    Resolver,
    bind_loop,
    collect_env,
)

MODULE = ""  # scope of code that runs when the module is imported
MAIN = "<main>"  # body of `if __name__ == "__main__":`, never run on import
MAX_EVENTS = 5_000
MAX_PAYLOAD_DEPTH = 4

# Event kinds
NETWORK = "network"
NETWORK_IMPORT = "network-import"
SECRET = "secret"
RECON = "recon"
METADATA = "metadata"
PROCESS = "process"
SHELL_PAYLOAD = "shell-payload"
NATIVE = "native"
DYN_EXEC = "dynamic-exec"
EXEC_PAYLOAD = "exec-payload"
DYN_IMPORT = "dynamic-import"
BUILTINS = "builtins"
UNMARSHAL = "unmarshal"
WRITE_OUTSIDE = "write-outside"
PERSISTENCE = "persistence"
AGENT_MEMORY = "agent-memory"


@dataclass(frozen=True)
class Event:
    kind: str
    line: int
    col: int  # 1-based
    scope: str
    detail: str


def short(text: str, n: int = 80) -> str:
    r = repr(text)
    return r if len(r) <= n else r[: n - 3] + "..."


def classify_path(path: str) -> str | None:
    """Event kind for a write to ``path`` (folded, ``{}`` for unknown pieces), or None."""
    p = cat.normalise_path(path)
    if cat.AGENT_MEMORY_PATH.search(p):
        return AGENT_MEMORY
    if cat.PERSISTENCE_PATH.search(p):
        return PERSISTENCE
    if p in cat.HARMLESS_ABSOLUTE:
        return None
    if p.startswith(("/", "~")) or p == ".." or p.startswith("../") or "/../" in p \
            or p.endswith("/..") or (len(p) > 2 and p[1] == ":" and p[2] == "/"):
        return WRITE_OUTSIDE
    return None


def _is_main_check(test: ast.expr) -> bool:
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 \
            or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and consts)


class Collector(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, resolver: Resolver) -> None:
        self.tree = tree
        self.r = resolver
        self.events: list[Event] = []
        self.functions: set[str] = set()
        self._raw_edges: dict[str, set[str]] = defaultdict(set)
        self.scope = MODULE
        self.env: Env | None = None
        self.qual = ""
        self.current_class: str | None = None
        self._seen: set[tuple[str, int, str]] = set()
        self._parent: dict[int, ast.AST] = {}
        self._immediate_lambdas: set[int] = set()
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self._parent[id(child)] = node

    # ------------------------------------------------------------------ driver

    def run(self) -> None:
        for stmt in self.tree.body:
            self.visit(stmt)

    def emit(self, kind: str, node: ast.AST, detail: str) -> None:
        line = getattr(node, "lineno", 1)
        # One metadata finding per scope: the address flows through names to every use.
        key = (kind, 0 if kind == METADATA else line, self.scope)
        if key in self._seen or len(self.events) >= MAX_EVENTS:
            return
        self._seen.add(key)
        self.events.append(Event(kind, line, getattr(node, "col_offset", 0) + 1, self.scope,
                                  detail))

    # ------------------------------------------------------------------ scopes

    def _join(self, name: str) -> str:
        return f"{self.qual}.{name}" if self.qual else name

    def _enter_function(self, key: str, args: ast.arguments | None,
                        body: list[ast.stmt]) -> tuple[str, Env | None, str]:
        saved = (self.scope, self.env, self.qual)
        env: Env = {}
        if args is not None:
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                env[a.arg] = None
            for va in (args.vararg, args.kwarg):
                if va is not None:
                    env[va.arg] = None
        collect_env(body, env)
        self.functions.add(key)
        self.scope, self.env, self.qual = key, env, f"{key}.<locals>"
        return saved

    def _visit_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        key = self._join(node.name)
        for d in node.decorator_list:
            self.visit(d)
            self._edge_to_callable(d)
            q = self.r.qualify(d, self.env)
            if q == "atexit.register":  # the decorated function runs at interpreter exit
                self._raw_edges[self.scope].add(key)
        for default in [*node.args.defaults, *[k for k in node.args.kw_defaults if k]]:
            self.visit(default)
        method_of = self.current_class if self.qual == self.current_class else None
        saved = self._enter_function(key, node.args, node.body)
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                     for d in node.decorator_list)
        if method_of is not None and node.args.args and not static and self.env is not None \
                and method_of in self.r.classes:
            first = node.args.args[0].arg  # self / cls: attributes resolve through the class
            if self.env.get(first) is None:
                self.env[first] = Instance(method_of)
        for stmt in node.body:
            self.visit(stmt)
        self.scope, self.env, self.qual = saved

    visit_FunctionDef = _visit_def
    visit_AsyncFunctionDef = _visit_def

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in node.args.defaults:
            self.visit(default)
        if id(node) in self._immediate_lambdas:
            self.visit(node.body)
            return
        key = self._lambda_key(node)
        saved = self._enter_function(key, node.args, [])
        self.visit(node.body)
        self.scope, self.env, self.qual = saved

    def _lambda_key(self, node: ast.Lambda) -> str:
        return self._join(f"<lambda>@{node.lineno}:{node.col_offset}")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        for d in node.decorator_list:  # decorators are called when the class is created
            self._edge_to_callable(d)
        class_q = self._join(node.name)
        for k in node.keywords:  # a same-file metaclass runs when the class is created
            if k.arg == "metaclass" and isinstance(k.value, ast.Name):
                for m in ("__new__", "__init__", "__prepare__"):
                    self._raw_edges[self.scope].add(f"{k.value.id}.{m}")
        for b in node.bases:  # __init_subclass__ of a same-file base runs too
            if isinstance(b, ast.Name):
                self._raw_edges[self.scope].add(f"{b.id}.__init_subclass__")
        saved_qual, saved_class = self.qual, self.current_class
        self.qual, self.current_class = class_q, class_q
        for stmt in node.body:  # the class body runs in the enclosing scope
            self.visit(stmt)
        self.qual, self.current_class = saved_qual, saved_class

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp
                             | ast.DictComp) -> None:
        # The targets stand for the items of what they iterate, as loop variables do.
        saved = self.env
        env: Env = dict(saved) if saved is not None else {}
        for gen in node.generators:
            bind_loop(gen.target, gen.iter, env)
        self.env = env
        self.generic_visit(node)
        self.env = saved

    visit_ListComp = _visit_comprehension
    visit_SetComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        if self.scope == MODULE and _is_main_check(node.test):
            saved = self.scope
            self.scope = MAIN
            for stmt in node.body:
                self.visit(stmt)
            self.scope = saved
        else:
            for stmt in node.body:
                self.visit(stmt)
        for stmt in node.orelse:
            self.visit(stmt)

    # ------------------------------------------------------------------ imports

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if cat.is_network_module(a.name):
                self.emit(NETWORK_IMPORT, node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if cat.is_network_module(node.module) or cat.is_network_module(full):
                    self.emit(NETWORK_IMPORT, node, node.module)
                    break

    # ------------------------------------------------------------------ names

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id == "__builtins__":
                self.emit(BUILTINS, node, "reaches __builtins__")
            elif self.r.qualify(node, self.env) == "os.environ":
                self._environ_use(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            q = self.r.qualify(node, self.env)
            if q == "os.environ":
                self._environ_use(node)
            elif q in ("builtins.__dict__", "sys.modules.builtins"):
                self.emit(BUILTINS, node, f"reaches {q}")
        self.generic_visit(node)

    def _environ_use(self, node: ast.expr) -> None:
        parent = self._parent.get(id(node))
        if isinstance(parent, ast.Subscript) and parent.value is node:
            if isinstance(parent.ctx, ast.Load):
                name = self.r.fold(parent.slice, self.env)
                if name and cat.is_secret_env_name(name):
                    self.emit(SECRET, node, f"reads environment variable {name}")
            return
        if isinstance(parent, ast.Attribute):
            if parent.attr in ("copy", "items", "values", "__repr__", "__str__"):
                self.emit(SECRET, node, f"reads the whole environment (os.environ.{parent.attr})")
            return
        if isinstance(parent, (ast.Compare, ast.Assign, ast.AnnAssign, ast.NamedExpr)):
            return
        self.emit(SECRET, node, "reads the whole environment (os.environ)")

    def visit_Constant(self, node: ast.Constant) -> None:
        parent = self._parent.get(id(node))
        if isinstance(parent, ast.Expr):
            return  # docstrings and bare strings are never used
        if isinstance(node.value, int) and node.value == cat.METADATA_INT:
            self.emit(METADATA, node, "cloud metadata address 169.254.169.254 as an integer")
        elif isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            self._check_string(text, node)

    def _check_string(self, text: str, node: ast.AST) -> None:
        host = cat.metadata_host_in(text)
        if host:
            self.emit(METADATA, node, f"cloud metadata address {host} in {short(text)}")
        if cat.CREDENTIAL_PATH.search(cat.normalise_path(text)):
            self.emit(SECRET, node, f"credential file path {short(text)}")

    def _strings(self, expr: ast.AST) -> None:
        if isinstance(expr, (ast.Tuple, ast.List)):
            for e in expr.elts[:64]:
                self._strings(e)
            return
        if isinstance(expr, ast.Constant):
            return  # visit_Constant covers it
        text = self.r.fold(expr, self.env)
        if text:
            self._check_string(text, expr)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._strings(node.value)
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self._strings(node.value)
        self.generic_visit(node)

    # ------------------------------------------------------------------ calls

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Lambda):
            self._immediate_lambdas.add(id(node.func))
        q = self.r.qualify(node.func, self.env)
        if q is not None:
            self._classify_call(node, q)
        else:  # a container item or loop variable: every callable it may be
            if isinstance(node.func, ast.Attribute):
                self._method_call(node, node.func.attr)
            for alt in self.r.qualify_all(node.func, self.env):
                self._classify_call(node, alt, methods=False)
        self._call_edges(node)
        for a in [*node.args, *(k.value for k in node.keywords)]:
            self._strings(a)
            self._callable_argument(node, a)
        self.generic_visit(node)

    def _callable_argument(self, node: ast.Call, arg: ast.expr) -> None:
        """``map(os.system, cmds)``, ``atexit.register(os.system, c)``, ``Thread(target=
        os.popen)``: a process or exec callable handed to a call that calls it."""
        if not isinstance(arg, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            return
        q = self.r.qualify(arg, self.env)
        candidates = [q] if q is not None else [] if isinstance(arg, (
            ast.Attribute, ast.Call)) else self.r.qualify_all(arg, self.env)
        for q in candidates:
            if q in cat.PROCESS:
                self.emit(PROCESS, node, f"{q} handed to {ast.unparse(node.func)[:40]}() "
                          "(called by it)")
            elif q in cat.DYNAMIC_EXEC:
                self.emit(DYN_EXEC, node, f"{q} handed to {ast.unparse(node.func)[:40]}()")

    def _arg(self, node: ast.Call, index: int, keyword: str) -> ast.expr | None:
        if len(node.args) > index and not isinstance(node.args[index], ast.Starred):
            return node.args[index]
        for k in node.keywords:
            if k.arg == keyword:
                return k.value
        return None

    def _classify_call(self, node: ast.Call, q: str | None, methods: bool = True) -> None:
        if methods and isinstance(node.func, ast.Attribute):
            self._method_call(node, node.func.attr)
        if q is None:
            return
        if q in cat.IMPORTERS:
            self._dynamic_import(node, q)
        elif q in cat.DYNAMIC_EXEC:
            source = self._arg(node, 0, "source")
            payload = self._payload(source) if source is not None else None
            if payload:
                self.emit(EXEC_PAYLOAD, node, f"{q}() runs {payload} code")
            else:
                self.emit(DYN_EXEC, node, f"{q}() of code that is not a constant")
        elif q in cat.LOADERS_OF_CODE:
            data = self._arg(node, 0, "data")
            payload = self._payload(data) if data is not None else None
            if payload:
                self.emit(EXEC_PAYLOAD, node, f"{q}() of {payload} data")
            elif q == "marshal.loads":
                self.emit(UNMARSHAL, node, "marshal.loads() builds code objects")
        elif q in cat.PROCESS:
            cmd = " ".join(self.r.fold(a, self.env) or UNKNOWN for a in node.args[:8]
                           if not isinstance(a, (ast.List, ast.Tuple)))
            for a in node.args[:1]:
                if isinstance(a, (ast.List, ast.Tuple)):
                    cmd += " " + " ".join(self.r.fold(e, self.env) or UNKNOWN
                                          for e in a.elts[:32])
            if cat.SHELL_PAYLOAD.search(cmd):
                self.emit(SHELL_PAYLOAD, node, f"{q}({short(cmd.strip())})")
            else:
                self.emit(PROCESS, node, f"{q}({short(cmd.strip(), 60)})")
        elif q in cat.NATIVE or q.startswith(("ctypes.CDLL(", "ctypes.cdll.")):
            self.emit(NATIVE, node, f"{q}() loads or builds native code")
        elif cat.is_network_call(q):
            inner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if isinstance(inner, ast.Call):
                iq = self.r.qualify(inner.func, self.env)
                if iq is not None and cat.is_network_call(iq):
                    return  # urlopen(u).read(): the inner call is the network access
            detail = f"{q}()"
            if q in cat.DNS_LOOKUPS and node.args and not isinstance(node.args[0], ast.Constant):
                detail += " resolves a name built at run time (DNS exfiltration channel)"
            self.emit(NETWORK, node, detail)
        elif q in cat.RECON:
            self.emit(RECON, node, f"{q}()")
        elif q in cat.OPENERS:
            mode = self._arg(node, 1, "mode")
            mode_s = self.r.fold(mode, self.env) if mode is not None else "r"
            if mode_s and any(c in mode_s for c in "wax+"):
                self._write(self._arg(node, 0, "file"), node, q)
        elif q in cat.WRITE_DEST:
            idx = cat.WRITE_DEST[q]
            self._write(self._arg(node, idx, "dst" if idx else "path"), node, q)
        elif q == "os.open":
            flags = self._arg(node, 1, "flags")
            names = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "")
                     for n in ast.walk(flags)} if flags is not None else set()
            if names & {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}:
                self._write(self._arg(node, 0, "path"), node, q)
        if q in ("os.getenv", "os.environ.get", "os.environ.pop", "os.environ.setdefault",
                 "os.getenvb"):
            name_node = self._arg(node, 0, "key")
            name = self.r.fold(name_node, self.env) if name_node is not None else None
            if name and cat.is_secret_env_name(name):
                self.emit(SECRET, node, f"reads environment variable {name}")
        if q in ("getattr", "vars") and node.args and self.r.qualify(node.args[0], self.env) \
                == "builtins":
            self.emit(BUILTINS, node, f"{q}() on the builtins module")

    def _method_call(self, node: ast.Call, method: str) -> None:
        assert isinstance(node.func, ast.Attribute)
        if method in cat.PATH_WRITE_METHODS:
            self._write(node.func.value, node, f"Path.{method}")
        elif method == "open":
            mode = self._arg(node, 0, "mode")
            mode_s = self.r.fold(mode, self.env) if mode is not None else None
            if mode_s and any(c in mode_s for c in "wax+"):
                self._write(node.func.value, node, "Path.open")
        elif method == "exec_module":
            self.emit(DYN_EXEC, node, "loader.exec_module() runs a module from a path")

    def _dynamic_import(self, node: ast.Call, q: str) -> None:
        arg = self._arg(node, 0, "name")
        if arg is None:
            return
        name = self.r.fold(arg, self.env)
        if name is None or UNKNOWN in name:
            self.emit(DYN_IMPORT, node, f"{q}() of a module name computed at run time")
        elif not isinstance(arg, ast.Constant):
            self.emit(DYN_IMPORT, node, f"{q}() of {name!r} spelled indirectly (obfuscated)")

    def _write(self, target: ast.expr | None, node: ast.Call, api: str) -> None:
        if target is None:
            return
        path = self.r.fold(target, self.env)
        if not path:
            return
        kind = classify_path(path)
        if kind is not None:
            self.emit(kind, node, f"{api} writes {short(path)}")

    def _payload(self, expr: ast.AST, depth: int = 0) -> str | None:
        """What makes ``expr`` a payload: decoded, unmarshalled or downloaded content."""
        if depth > MAX_PAYLOAD_DEPTH:
            return None
        for sub in ast.walk(expr):
            if isinstance(sub, ast.Call):
                q = self.r.qualify(sub.func, self.env)
                if q in cat.DECODERS:
                    return "unmarshalled" if q == "marshal.loads" else f"decoded ({q})"
                if q is not None and cat.is_network_call(q):
                    return f"downloaded ({q})"
                if isinstance(sub.func, ast.Attribute) and sub.func.attr == "decode" \
                        and sub.args:
                    enc = self.r.fold(sub.args[0], self.env) or ""
                    if enc.lower().replace("-", "_") in ("rot13", "rot_13", "hex", "base64",
                                                         "zlib", "bz2", "uu"):
                        return f"decoded ({enc})"
            elif isinstance(sub, ast.Name):
                found, value = self.r.lookup(sub.id, self.env)
                if found and value is not None and value is not expr:
                    hit = self._payload(value, depth + 1)
                    if hit:
                        return hit
        return None

    # ------------------------------------------------------------------ call graph

    def _candidates(self, name: str) -> set[str]:
        parts = self.qual.split(".") if self.qual else []
        prefixes = [".".join(parts[:i]) for i in range(len(parts), -1, -1)]
        out: set[str] = set()
        for p in prefixes:
            base = f"{p}.{name}" if p else name
            out.add(base)
            for m in ("__init__", "__new__", "__post_init__"):
                out.add(f"{base}.{m}")
        return out

    def _edge_to_callable(self, expr: ast.expr) -> None:
        target = expr.func if isinstance(expr, ast.Call) else expr
        if isinstance(target, ast.Name):
            self._raw_edges[self.scope] |= self._candidates(target.id)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            owner = target.value.id
            if owner in ("self", "cls") and self.current_class:
                self._raw_edges[self.scope].add(f"{self.current_class}.{target.attr}")
            else:
                self._raw_edges[self.scope] |= {f"{c}.{target.attr}"
                                                for c in self._candidates(owner)}
        elif isinstance(target, ast.Lambda):
            self._raw_edges[self.scope].add(self._lambda_key(target))

    def _call_edges(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Lambda):
            self._edge_to_callable(node.func)
            for leaf in self.r.leaves(node.func, self.env):  # g = f; HOOKS["go"]; loops
                if leaf is not node.func:
                    self._edge_to_callable(leaf)
        # Functions handed to a call (callbacks, threads, atexit) may run right away.
        for a in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(a, (ast.Name, ast.Lambda)) or (
                    isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)):
                self._edge_to_callable(a)

    def edges(self) -> dict[str, set[str]]:
        return {k: {t for t in v if t in self.functions} for k, v in self._raw_edges.items()}


def reachable(edges: dict[str, set[str]], start: str, limit: int = 100_000) -> set[str]:
    seen = {start}
    stack = [start]
    while stack and len(seen) < limit:
        for t in edges.get(stack.pop(), ()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return seen
