"""Walk a parsed module once and record behaviour events (network, secrets, processes,
exec, writes ...) with their line and the scope they run in, plus a same-file call graph so
that code reached at import time can be told apart from code that only runs when called."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass

from mlwarden.behaviour import knowledge as cat
from mlwarden.behaviour.endpoints import endpoint_in
from mlwarden.behaviour.marshal_read import marshal_names
from mlwarden.behaviour.resolve import (
    UNKNOWN,
    Env,
    Instance,
    Resolver,
    bind_loop,
    collect_env,
    environ_bound,
)

MODULE = ""  # scope of code that runs when the module is imported
MAIN = "<main>"  # body of `if __name__ == "__main__":`, never run on import
RELEASE = "<release>"  # setup.py's `if sys.argv[-1] == "publish":` blocks (release commands)
_RELEASE_WORDS = frozenset({"publish", "release", "upload", "tag", "dist", "docs", "test",
                            "clean", "bump", "sdist", "lint", "format"})
MAX_EVENTS = 5_000
MAX_PAYLOAD_DEPTH = 4
MAX_EXEC_DEPTH = 4  # exec("exec('...')") nesting analysed recursively
MAX_EXEC_SOURCE = 1 << 20  # constant source handed to exec that is parsed again

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
STEALER = "stealer"  # infostealer targets: browser/wallet/discord/telegram files, clipboard ...
INJECTION = "injection"  # Windows process injection and shellcode runners through ctypes
DROP = "drop"  # writes or downloads an executable file
ENDPOINT = "endpoint"  # webhook, paste, tunnel, out-of-band domain
DNS_EXFIL = "dns-exfil"  # resolves a host name built from data
PACKED = "packed"  # packer runtime or packed code that cannot be read
DISPATCH = "dispatch"  # string-driven dispatch (methodcaller, resolve_name, logging factories)
EVAL_DISGUISE = "eval-disguise"  # typing.get_type_hints, timeit, code.InteractiveInterpreter
NAMESPACE = "namespace"  # iteration over / unknown getattr on a dangerous module's namespace
LIBC = "libc"  # ctypes reaching libc or the Python C API
NESTED_PICKLE = "nested-pickle"  # a deserialiser of constant bytes (payload in Event.data)
OBFUSCATED_NAME = "obfuscated-name"  # identifiers that NFKC folds to another name
EXEC_FILE = "exec-file"  # exec of a file's contents (setup.py reading its version file)
OBFUSCATED_CALL = "obfuscated-call"  # a process/exec callable reached through computed names


@dataclass(frozen=True)
class Event:
    kind: str
    line: int
    col: int  # 1-based
    scope: str
    detail: str
    data: bytes | None = None  # NESTED_PICKLE: the constant bytes handed to the loader


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
    if p in cat.HARMLESS_ABSOLUTE or p.startswith(cat.HARMLESS_PREFIXES):
        return None
    if p.startswith(("/", "~")) or p == ".." or p.startswith("../") or "/../" in p \
            or p.endswith("/..") or (len(p) > 2 and p[1] == ":" and p[2] == "/"):
        return WRITE_OUTSIDE
    return None


_MARSHAL_DANGER = frozenset({
    "system", "popen", "exec", "eval", "compile", "__import__", "subprocess", "socket",
    "urlopen", "b64decode", "Popen", "check_output", "run", "connect", "loads", "environ",
    "getenv", "requests", "urllib", "os", "marshal", "zlib", "base64", "ctypes", "startfile",
})
_SPECIAL_ATTRS = frozenset({"__dict__", "builtins", "__subclasses__", "__globals__", "f_globals",
                            "f_builtins"})


_REFLECT = frozenset({"getattr", "__import__", "vars", "globals", "locals", "import_module",
                      "methodcaller", "attrgetter", "__getattribute__", "resolve_name"})


def _obfuscated(func: ast.expr) -> bool:
    """A call target spelled through namespaces and computed strings rather than named:
    ``os.__dict__['sys'+'tem']``, ``vars(__builtins__)[...]``, ``getattr(os, 'sy'+'stem')``,
    ``__getattribute__``, ``globals()[...]``."""
    for sub in ast.walk(func):
        if isinstance(sub, ast.Subscript):
            base = ast.unparse(sub.value)
            if not isinstance(sub.slice, ast.Constant) or any(
                    w in base for w in ("__dict__", "vars(", "globals(", "locals(",
                                        "__builtins__", "sys.modules", "builtins")):
                return True
        if isinstance(sub, ast.Attribute) and sub.attr in ("__getattribute__", "__dict__"):
            return True
        if isinstance(sub, ast.Call):
            f = sub.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(
                f, ast.Name) else ""
            if name in _REFLECT and any(not isinstance(a, ast.Constant) for a in sub.args[1:]
                                        if name == "getattr") | any(
                    not isinstance(a, ast.Constant) for a in sub.args[:1]
                    if name in ("__import__", "import_module")):
                return True
            if name in ("vars", "globals", "locals", "methodcaller", "attrgetter",
                        "resolve_name"):
                return True
        if isinstance(sub, ast.Name) and sub.id == "__builtins__":
            return True
    return False


def _is_release_check(test: ast.expr) -> bool:
    """``sys.argv[-1] == "publish"`` / ``"upload" in sys.argv``: a maintainer's command."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    sides = [test.left, test.comparators[0]]
    argv = any("sys.argv" in ast.unparse(x) for x in sides)
    words = [x.value for x in sides if isinstance(x, ast.Constant) and isinstance(x.value, str)]
    return argv and any(w.lower() in _RELEASE_WORDS for w in words)


def is_main_check(test: ast.expr) -> bool:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        # rich: `if sys.platform != "win32" and __name__ == "__main__":` never runs on import
        return any(is_main_check(v) for v in test.values)
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 \
            or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and consts)


class Collector(ast.NodeVisitor):
    def __init__(self, tree: ast.Module, resolver: Resolver, *, exec_depth: int = 0,
                 at: tuple[int, int, str] | None = None) -> None:
        self.tree = tree
        self.r = resolver
        self.events: list[Event] = []
        self.functions: set[str] = set()
        self._raw_edges: dict[str, set[str]] = defaultdict(set)
        self._callback_edges: dict[str, set[str]] = defaultdict(set)
        # scope -> qualified names it calls / modules it imports: the program links them
        self.calls: dict[str, set[str]] = defaultdict(set)
        self.imports: dict[str, set[str]] = defaultdict(set)
        self.exec_depth = exec_depth
        self._at = at  # (line, col, scope) of the exec call whose constant code this is
        self.scope = MODULE if at is None else at[2]
        self.env: Env | None = None
        self.qual = ""
        self.current_class: str | None = None
        self._seen: set[tuple[str, int, str]] = set()
        self._stack: list[ast.AST] = []  # nodes being visited: the parent is [-2]
        self._immediate_lambdas: set[int] = set()
        self._env_names: set[str] = set()
        self._env_stack: list[set[str]] = []

    # ------------------------------------------------------------------ driver

    def visit(self, node: ast.AST) -> None:
        self._stack.append(node)
        try:
            super().visit(node)
        finally:
            self._stack.pop()

    def _parent_of(self, node: ast.AST) -> ast.AST | None:
        st = self._stack
        return st[-2] if len(st) > 1 and st[-1] is node else None

    def run(self) -> None:
        for stmt in self.tree.body:
            self.visit(stmt)

    def emit(self, kind: str, node: ast.AST, detail: str, data: bytes | None = None) -> None:
        if self._at is not None:  # code run by exec: reported at the exec call
            line, col = self._at[0], self._at[1]
            detail = f"{detail} (in code that exec/eval runs)"
        else:
            line, col = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        # One metadata finding per scope: the address flows through names to every use.
        key = (kind, 0 if kind == METADATA else line, self.scope)
        if key in self._seen or len(self.events) >= MAX_EVENTS:
            return
        self._seen.add(key)
        self.events.append(Event(kind, line, col, self.scope, detail, data))

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
        self._env_stack.append(self._env_names)
        self._env_names = self._env_names | environ_bound(env, self.r.environ_names)
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
        self._env_names = self._env_stack.pop()

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
        self._env_names = self._env_stack.pop()

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
        if self.scope == MODULE and (is_main_check(node.test)
                                     or _is_release_check(node.test)):
            saved = self.scope
            self.scope = MAIN if is_main_check(node.test) else RELEASE
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
            self.imports[self.scope].add(a.name)
            self._packer_module(a.name, node)
            if cat.is_network_module(a.name):
                self.emit(NETWORK_IMPORT, node, a.name)

    def _packer_module(self, module: str, node: ast.AST) -> None:
        top = module.split(".")[0]
        if top in cat.PACKER_NAMES or top.startswith(cat.PACKER_PREFIXES):
            self.emit(PACKED, node, f"imports the code packer runtime {module}: the code it "
                      "unpacks cannot be read statically")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.r.absolute(node.module, node.level)
        if base is not None:
            self.imports[self.scope].add(base)
            for a in node.names:
                if a.name != "*":
                    self.imports[self.scope].add(f"{base}.{a.name}")
                if a.name in cat.PACKER_NAMES or a.name.startswith(cat.PACKER_PREFIXES):
                    self.emit(PACKED, node, f"imports {a.name} from {base}: packed code that "
                              "cannot be read statically")
            self._packer_module(base, node)
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
            elif node.id in cat.PACKER_NAMES or node.id.startswith(cat.PACKER_PREFIXES):
                self.emit(PACKED, node, f"calls the code packer {node.id}: the code it "
                          "unpacks cannot be read statically")
            elif (node.id in self.r.environ_names or node.id in self._env_names) and \
                    self.r.qualify(node, self.env) == "os.environ":
                self._environ_use(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            attr = node.attr
            if attr == "environ" or attr in _SPECIAL_ATTRS:
                q = self.r.qualify(node, self.env)
                if q == "os.environ":
                    self._environ_use(node)
                elif q in ("builtins.__dict__", "sys.modules.builtins"):
                    self.emit(BUILTINS, node, f"reaches {q}")
                elif attr in ("__subclasses__", "__globals__", "f_globals", "f_builtins"):
                    self.emit(BUILTINS, node, f"reaches interpreter internals (.{attr})")
            elif attr in cat.INJECTION_APIS:
                self.emit(INJECTION, node, f"reaches the process-injection API {attr}")
            elif attr in cat.SHELLCODE_APIS and self._uses_ctypes():
                self.emit(INJECTION, node, f"reaches {attr} through ctypes (executable "
                          "memory: a shellcode runner)")
            elif attr in cat.STEALER_APIS and self._uses_ctypes():
                self.emit(STEALER, node, f"reaches {attr} (credential, clipboard, keyboard or "
                          "screen capture API)")
        self.generic_visit(node)

    def _own(self, q: str) -> bool:
        """A call into the analysed package's own modules (aiohttp calling aiohttp.*): the
        program's call graph follows it; its name alone says nothing."""
        mod = self.r.module
        return mod is not None and q.split(".", 1)[0] == mod.split(".", 1)[0]

    def _uses_ctypes(self) -> bool:
        return self.r.uses_ctypes

    def _environ_use(self, node: ast.expr) -> None:
        parent = self._parent_of(node)
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
        parent = self._parent_of(node)
        if isinstance(parent, ast.Expr):
            return  # docstrings and bare strings are never used
        if isinstance(node.value, int) and node.value == cat.METADATA_INT:
            self.emit(METADATA, node, "cloud metadata address 169.254.169.254 as an integer")
        elif isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            self._check_string(text, node)

    def _check_string(self, text: str, node: ast.AST) -> None:
        if len(text) < 4:
            return
        host = cat.metadata_host_in(text)
        if host:
            self.emit(METADATA, node, f"cloud metadata address {host} in {short(text)}")
        low = cat.normalise_path(text)
        # a bare file name ('.netrc' in a list of names to look for) is not a path read
        if cat.CREDENTIAL_PATH.search(low) and ("/" in low or "id_rsa" in low
                                                 or "id_ed25519" in low or UNKNOWN in low):
            self.emit(SECRET, node, f"credential file path {short(text)}")
        target = cat.stealer_target(text)
        if target is not None:
            self.emit(STEALER, node, f"names an infostealer target ({target}): {short(text)}")
        ep = endpoint_in(text)
        if ep is not None:
            self.emit(ENDPOINT, node, f"names a {ep.category} endpoint ({ep.domain}) in "
                      f"{short(text)} [{ep.reference}]")
        if cat.RUN_KEY.search(text):
            self.emit(PERSISTENCE, node, f"names the Windows autorun registry key {short(text)}")

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
            if self.scope.rsplit(".", 1)[-1] in ("__reduce__", "__reduce_ex__") \
                    and isinstance(node.value, ast.Tuple) and node.value.elts:
                q = self.r.qualify(node.value.elts[0], self.env)
                if q in cat.PROCESS or q in cat.DYNAMIC_EXEC or q in cat.IMPORTERS:
                    kind = PROCESS if q in cat.PROCESS else DYN_EXEC
                    self.emit(kind, node, f"__reduce__ returns {q}: unpickling the object "
                              f"calls {q}")
        self.generic_visit(node)

    # ------------------------------------------------------------------ calls

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Lambda):
            self._immediate_lambdas.add(id(node.func))
        q = self.r.qualify(node.func, self.env)
        if q == "operator.methodcaller()" and isinstance(node.func, ast.Call) \
                and node.func.args and node.args:  # methodcaller("system", c)(os) calls os.system
            base = self.r.qualify(node.args[0], self.env)
            name = self.r.fold(node.func.args[0], self.env)
            if base and name and UNKNOWN not in name:
                q = f"{base}.{name}"
        if q is not None:
            self.calls[self.scope].add(q)
            self._classify_call(node, q)
            if (q in cat.PROCESS or q in cat.DYNAMIC_EXEC or q in cat.IMPORTERS) \
                    and _obfuscated(node.func):
                self.emit(OBFUSCATED_CALL, node, f"{q}() reached through computed names "
                          f"({short(ast.unparse(node.func), 60)})")
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
            self._exec_call(node, q)
        elif q in cat.LOADERS_OF_CODE or q in cat.PICKLE_LOADERS:
            data = self._arg(node, 0, "data")
            payload = self._payload(data) if data is not None else None
            if payload and data is not None and q != "marshal.loads" \
                    and not self._decoded_constant(data):
                payload = None  # sklearn: pickle.loads(codecs.decode(cache, 'zlib')) of a file
            if payload:
                self.emit(EXEC_PAYLOAD, node, f"{q}() of {payload} data")
            elif q == "marshal.loads":
                self.emit(UNMARSHAL, node, "marshal.loads() builds code objects")
            if data is not None and q != "marshal.loads" and (
                    q in cat.LOADS_FROM_BYTES or self._is_bytes_io(data)):
                blob = self._constant_bytes(data)
                if blob is not None:
                    self.emit(NESTED_PICKLE, node, f"{q}() of {len(blob)} constant bytes",
                              data=blob)
            elif data is not None and q == "marshal.loads":
                self._marshal_blob(data, node)
        elif q in cat.STRING_DISPATCH:
            self.emit(DISPATCH, node, f"{q}() resolves a name given as a string and calls it")
        elif q in cat.EVAL_DISGUISE:
            if q != "inspect.get_annotations" or any(
                    k.arg == "eval_str" and not (isinstance(k.value, ast.Constant)
                                                 and not k.value.value) for k in node.keywords):
                self.emit(EVAL_DISGUISE, node, f"{q}() evaluates strings as Python")
        elif q in cat.CLIPBOARD or q in cat.SCREENSHOT or q in cat.KEYLOGGER:
            what = ("reads or replaces the clipboard" if q in cat.CLIPBOARD else
                    "captures the screen" if q in cat.SCREENSHOT else "logs keystrokes")
            self.emit(STEALER, node, f"{q}() {what}")
        elif q.startswith(cat.PROCESS_MODULES) or q in cat.PROCESS:
            self._process(node, q)
        elif q in cat.NATIVE or q.startswith(("ctypes.CDLL(", "ctypes.cdll.", "ctypes.windll.",
                                              "ctypes.pythonapi")):
            lib = self._arg(node, 0, "name")
            name = self.r.fold(lib, self.env) if lib is not None else None
            if q.startswith("ctypes.pythonapi") or (q in (
                    "ctypes.CDLL", "ctypes.PyDLL", "ctypes.cdll.LoadLibrary") and (
                    (isinstance(lib, ast.Constant) and lib.value is None)
                    or (name is not None and cat.LIBC_NAMES.search(name)))) or (
                    lib is not None and isinstance(lib, ast.Call)
                    and self.r.qualify(lib.func, self.env) == "ctypes.util.find_library"
                    and self.r.fold(lib.args[0], self.env) in ("c", "libc", "msvcrt")
                    if isinstance(lib, ast.Call) and lib.args else False):
                self.emit(LIBC, node, f"{q}() reaches the C library or the Python C API "
                          "(system, exec and raw memory)")
            else:
                self.emit(NATIVE, node, f"{q}() loads or builds native code")
        elif q in ("urllib.request.urlretrieve", "urllib.urlretrieve", "wget.download"):
            self.emit(NETWORK, node, f"{q}() downloads a file")
            dest = self._arg(node, 1, "filename" if q != "wget.download" else "out")
            path = self.r.fold(dest, self.env) if dest is not None else None
            if path and cat.normalise_path(path).endswith(cat.EXECUTABLE_SUFFIXES):
                self.emit(DROP, node, f"{q}() downloads an executable to {short(path)}")
        elif cat.is_network_call(q) and not self._own(q):
            inner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if isinstance(inner, ast.Call):
                iq = self.r.qualify(inner.func, self.env)
                if iq is not None and cat.is_network_call(iq):
                    return  # urlopen(u).read(): the inner call is the network access
            detail = f"{q}()"
            if q in cat.DNS_LOOKUPS and node.args and not isinstance(node.args[0], ast.Constant):
                host = self.r.fold(node.args[0], self.env) or UNKNOWN
                if UNKNOWN in host and "." in host.split(UNKNOWN)[-1]:
                    self.emit(DNS_EXFIL, node, f"{q}({short(host)}) resolves a host name built "
                              "from data: the lookup itself carries the data out (DNS "
                              "exfiltration)")
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
        if q in ("getattr", "dir", "vars", "inspect.getmembers", "setattr") and node.args:
            mod = self.r.qualify(node.args[0], self.env)
            if mod in cat.DANGEROUS_MODULES:
                name = self.r.fold(node.args[1], self.env) if q in ("getattr", "setattr") \
                    and len(node.args) > 1 else None
                if q not in ("getattr", "setattr") or name is None or UNKNOWN in name:
                    self.emit(NAMESPACE, node, f"{q}() over the namespace of {mod} with a name "
                              "not known statically")
        if isinstance(node.func, ast.Attribute) and node.func.attr in (
                "items", "values", "keys") and not node.args:
            base = self.r.qualify(node.func.value, self.env)
            if base is not None and base.endswith(".__dict__") \
                    and base[: -len(".__dict__")] in cat.DANGEROUS_MODULES:
                self.emit(NAMESPACE, node, f"iterates over {base}")

    def _command(self, node: ast.Call) -> str:
        cmd = " ".join(self.r.fold(a, self.env) or UNKNOWN for a in node.args[:8]
                       if not isinstance(a, (ast.List, ast.Tuple)))
        for a in node.args[:1]:
            if isinstance(a, (ast.List, ast.Tuple)):
                cmd += " " + " ".join(self.r.fold(e, self.env) or UNKNOWN for e in a.elts[:32])
            elif not isinstance(a, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                items = self.r.fold_items(a, self.env)
                if items is not None:
                    cmd = " ".join(items)
        for k in node.keywords:
            if k.arg in ("args", "cmd", "command"):
                cmd += " " + (self.r.fold(k.value, self.env) or " ".join(
                    self.r.fold_items(k.value, self.env) or [UNKNOWN]))
        return cmd.strip()

    def _process(self, node: ast.Call, q: str) -> None:
        cmd = self._command(node)
        if q.startswith(cat.PROCESS_MODULES):
            cmd = f"{q.split('.')[-1]} {cmd}"
        if cat.SHELL_PAYLOAD.search(cmd):
            self.emit(SHELL_PAYLOAD, node, f"{q}({short(cmd)})")
            return
        if cat.PERSISTENCE_COMMAND.search(cmd) or cat.RUN_KEY.search(cmd):
            self.emit(PERSISTENCE, node, f"{q}({short(cmd)}) installs persistence or turns "
                      "off defences")
        low = cmd.lower()
        if any(w in low.split() for w in ("pbpaste", "xclip", "xsel", "screencapture",
                                          "scrot", "import -window")):
            self.emit(STEALER, node, f"{q}({short(cmd, 60)}) reads the clipboard or screen")
        self.emit(PROCESS, node, f"{q}({short(cmd, 60)})")

    def _exec_call(self, node: ast.Call, q: str) -> None:
        source = self._arg(node, 0, "source")
        payload = self._payload(source) if source is not None else None
        text = self.r.fold(source, self.env) if source is not None else None
        if payload:
            self.emit(EXEC_PAYLOAD, node, f"{q}() runs {payload} code")
        elif text is not None and UNKNOWN not in text:
            self.emit(DYN_EXEC, node, f"{q}() of a constant string (analysed as code)")
        else:
            read = self._file_read(source) if source is not None else None
            if read is not None:
                self.emit(EXEC_FILE, node, f"{q}() of the contents of {short(read)}")
            else:
                self.emit(DYN_EXEC, node, f"{q}() of code that is not a constant")
        if text is not None and UNKNOWN not in text and q not in ("types.FunctionType",
                                                                  "types.CodeType"):
            self._analyse_exec_source(text, node)

    def _file_read(self, expr: ast.expr) -> str | None:
        """The path whose contents ``expr`` is: ``open(p).read()``, ``f.read()`` of a
        ``with open(p) as f``, ``Path(p).read_text()``, ``compile(that, ...)``."""
        for _ in range(4):
            if isinstance(expr, ast.Name):
                found, value = self.r.lookup(expr.id, self.env)
                if not found or value is None:
                    return None
                expr = value
                continue
            if not isinstance(expr, ast.Call):
                return None
            q = self.r.qualify(expr.func, self.env)
            if q == "compile" and expr.args:
                expr = expr.args[0]
                continue
            f = expr.func
            if isinstance(f, ast.Attribute) and f.attr in ("read", "read_text", "read_bytes"):
                inner = f.value
                if isinstance(inner, ast.Name):
                    found, value = self.r.lookup(inner.id, self.env)
                    inner = value if found and value is not None else inner
                if isinstance(inner, ast.Call):
                    iq = self.r.qualify(inner.func, self.env)
                    if iq in cat.OPENERS or iq in ("pathlib.Path", "pathlib.PurePath") \
                            or (isinstance(inner.func, ast.Attribute)
                                and inner.func.attr == "open"):
                        arg = inner.args[0] if inner.args else (
                            inner.func.value if isinstance(inner.func, ast.Attribute) else None)
                        path = self.r.fold(arg, self.env) if arg is not None else None
                        return path or UNKNOWN
            return None
        return None

    def _analyse_exec_source(self, text: str, node: ast.Call) -> None:
        if self.exec_depth >= MAX_EXEC_DEPTH or len(text) > MAX_EXEC_SOURCE:
            return
        try:
            sub = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            try:
                sub = ast.parse(text, mode="eval")  # type: ignore[assignment]
                sub = ast.Module(body=[ast.Expr(sub.body)], type_ignores=[])  # type: ignore
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return
        at = (self._at[0], self._at[1]) if self._at else (node.lineno, node.col_offset + 1)
        inner = Collector(sub, self.r.child(sub), exec_depth=self.exec_depth + 1,
                          at=(at[0], at[1], self.scope))
        inner.run()
        for e in inner.events:
            key = (e.kind, e.line, e.scope)
            if key not in self._seen and len(self.events) < MAX_EVENTS:
                self._seen.add(key)
                self.events.append(e)
        # code exec'd here runs here: its calls, edges and imports belong to this scope
        for targets in inner.calls.values():
            self.calls[self.scope] |= targets
        for targets in inner._raw_edges.values():
            self._raw_edges[self.scope] |= targets
        for mods in inner.imports.values():
            self.imports[self.scope] |= mods

    def _is_bytes_io(self, expr: ast.expr) -> bool:
        return isinstance(expr, ast.Call) and self.r.qualify(expr.func, self.env) in (
            "io.BytesIO", "io.BufferedReader")

    def _decoded_constant(self, expr: ast.expr, depth: int = 0) -> bool:
        """A deserialiser's input decoded from a constant (a blob in the source) or from a
        download; decompressing a file the library itself wrote is not a payload."""
        if depth > MAX_PAYLOAD_DEPTH:
            return False
        for sub in ast.walk(expr):
            if isinstance(sub, ast.Name):
                found, value = self.r.lookup(sub.id, self.env)
                if found and value is not None and value is not expr \
                        and self._decoded_constant(value, depth + 1):
                    return True
            if not isinstance(sub, ast.Call):
                continue
            q = self.r.qualify(sub.func, self.env)
            if q is not None and cat.is_network_call(q):
                return True
            inner: ast.expr | None = None
            if (q in cat.DECODERS or q == "chr") and sub.args:
                inner = sub.args[0]
            elif isinstance(sub.func, ast.Attribute) and sub.func.attr == "decode":
                inner = sub.func.value
            if inner is not None:
                text = self.r.fold(inner, self.env)
                if text is not None and UNKNOWN not in text:
                    return True
        return False

    def _constant_bytes(self, expr: ast.expr) -> bytes | None:
        """Bytes a deserialiser receives when they are constant (or decode to a constant):
        ``b"..."``, ``base64.b64decode("...")``, ``io.BytesIO(b"...")``."""
        if isinstance(expr, ast.Call) and self.r.qualify(expr.func, self.env) in (
                "io.BytesIO", "io.BufferedReader") and expr.args:
            expr = expr.args[0]
        text = self.r.fold(expr, self.env)
        if text is None or UNKNOWN in text or len(text) < 2:
            return None
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return text.encode("utf-8")

    def _marshal_blob(self, expr: ast.expr, node: ast.Call) -> None:
        blob = self._constant_bytes(expr)
        if blob is None:
            return
        names = marshal_names(blob)
        if names is None:
            self.emit(PACKED, node, f"marshal.loads() of {len(blob)} constant bytes that do "
                      "not decode as a code object: packed code that cannot be read")
            return
        hits = sorted(n for n in names if n in _MARSHAL_DANGER)[:8]
        detail = f"marshal.loads() of a packed code object using {', '.join(hits)}" if hits \
            else "marshal.loads() of a packed code object"
        self.emit(EXEC_PAYLOAD if hits else UNMARSHAL, node, detail)

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
        if api not in ("os.makedirs", "os.mkdir", "Path.mkdir", "os.remove", "os.unlink",
                       "os.rmdir", "shutil.rmtree", "Path.unlink", "Path.rmdir") and \
                cat.normalise_path(path).endswith(cat.EXECUTABLE_SUFFIXES[:12]):
            self.emit(DROP, node, f"{api} writes the executable file {short(path)}")

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
                if q == "chr" or (q == "map" and sub.args
                                   and self.r.qualify(sub.args[0], self.env) == "chr"):
                    return "decoded (chr)"
                if isinstance(sub.func, ast.Attribute) and sub.func.attr == "decode" \
                        and sub.args:
                    enc = self.r.fold(sub.args[0], self.env) or ""
                    if enc.lower().replace("-", "_") in ("rot13", "rot_13", "hex", "base64",
                                                         "zlib", "bz2", "uu"):
                        return f"decoded ({enc})"
            elif isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Slice) \
                    and isinstance(sub.slice.step, ast.UnaryOp):
                return "reversed"
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

    def _edge_to_callable(self, expr: ast.expr, callback: bool = False) -> None:
        edges = self._callback_edges if callback else self._raw_edges
        target = expr.func if isinstance(expr, ast.Call) else expr
        if isinstance(target, ast.Name):
            edges[self.scope] |= self._candidates(target.id)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            owner = target.value.id
            if owner in ("self", "cls") and self.current_class:
                edges[self.scope].add(f"{self.current_class}.{target.attr}")
            else:
                edges[self.scope] |= {f"{c}.{target.attr}" for c in self._candidates(owner)}
        elif isinstance(target, ast.Lambda):
            edges[self.scope].add(self._lambda_key(target))

    def _call_edges(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Lambda):
            self._edge_to_callable(node.func)
            for leaf in self.r.leaves(node.func, self.env):  # g = f; HOOKS["go"]; loops
                if leaf is not node.func:
                    self._edge_to_callable(leaf)
        # Functions handed to a call may run right away: certainly for callers that call
        # their argument (threads, atexit, map, sorted ...); maybe for any other call
        # (a registration usually, kept apart: the package profile does not follow them).
        q = self.r.qualify(node.func, self.env) if not isinstance(node.func, ast.Lambda) \
            else None
        calls_it = q is not None and (q in cat.CALLS_ARGUMENT or q.startswith(
            cat.CALLS_ARGUMENT_PREFIXES))
        for a in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(a, (ast.Name, ast.Lambda)) or (
                    isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)):
                self._edge_to_callable(a, callback=not calls_it)

    def edges(self, callbacks: bool = True) -> dict[str, set[str]]:
        """Same-file call edges; with ``callbacks``, also to functions handed to calls
        that are not known to call them."""
        out = {k: {t for t in v if t in self.functions} for k, v in self._raw_edges.items()}
        if callbacks:
            for k, v in self._callback_edges.items():
                out.setdefault(k, set()).update(t for t in v if t in self.functions)
        return out


def reachable(edges: dict[str, set[str]], start: str, limit: int = 100_000) -> set[str]:
    seen = {start}
    stack = [start]
    while stack and len(seen) < limit:
        for t in edges.get(stack.pop(), ()):
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return seen
