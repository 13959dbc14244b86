"""AST analysis of code that runs at install time (setup.py), at import time (package
``__init__`` and top-level modules) or at interpreter start (.pth lines).

The source is parsed, never executed. Only code that actually runs in that phase is
walked: module-level statements, class bodies, and local functions that this code calls or
hands to someone else (atexit.register(f), Thread(target=f)), followed inline so that a
condition around the call (a CI variable, a date, a host name) guards what the function does.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Behaviour kinds.
NETWORK = "network"
PROCESS = "process"
SECRETS = "secrets"
DYNAMIC_EXEC = "dynamic-exec"
OBFUSCATED_EXEC = "obfuscated-exec"
AGENT_MEMORY = "agent-memory"
OUTSIDE_WRITE = "outside-write"


@dataclass(frozen=True)
class Behaviour:
    kind: str
    line: int
    detail: str
    guard: str | None = None  # the trigger condition around it, if any


_NETWORK_PREFIXES = ("socket.socket", "socket.create_connection", "urllib.request.urlopen",
                     "urllib.request.urlretrieve", "urllib.request.Request",
                     "urllib.urlopen", "urllib2.urlopen", "http.client.", "httplib.",
                     "requests.", "httpx.", "aiohttp.", "urllib3.", "ftplib.", "smtplib.",
                     "telnetlib.", "paramiko.", "websocket.", "websockets.", "pycurl.",
                     "dns.resolver.", "socket.getaddrinfo", "socket.gethostbyname")
_PROCESS = {"os.system", "os.popen", "os.startfile", "pty.spawn", "commands.getoutput",
            "asyncio.create_subprocess_exec", "asyncio.create_subprocess_shell",
            "os.posix_spawn", "os.posix_spawnp"}
_PROCESS_PREFIXES = ("subprocess.", "os.exec", "os.spawn")
_EXEC = {"exec", "eval", "compile", "builtins.exec", "builtins.eval", "builtins.compile",
         "execfile"}
_DECODERS = ("base64.", "codecs.decode", "zlib.decompress", "lzma.decompress",
             "bz2.decompress", "gzip.decompress", "marshal.loads", "binascii.",
             "bytes.fromhex", "bytearray.fromhex", "pickle.loads", "chr")
_REMOTE = _NETWORK_PREFIXES
_SECRET_PATHS = (".ssh", "id_rsa", "id_ed25519", "id_ecdsa", "/etc/passwd", "/etc/shadow",
                 ".aws/credentials", ".aws", ".netrc", ".git-credentials", ".pypirc",
                 ".docker/config.json", ".kube/config", "huggingface/token", ".npmrc",
                 ".gnupg", "login data", "keychain", ".bash_history", "wallet.dat",
                 ".config/gcloud")
_SECRET_ENV_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY",
                     "ACCESS_KEY", "PRIVATE_KEY", "AWS_", "AUTH")
_AGENT_FILES = ("claude.md", "agents.md", ".cursorrules", ".claude", ".cursor/rules",
                "copilot-instructions.md", ".windsurfrules", "gemini.md", ".clinerules",
                ".aider.conf", "conventions.md", ".github/copilot")
_WRITE_CALLS = {"open", "io.open", "os.open", "codecs.open", "shutil.copy", "shutil.copyfile",
                "shutil.copy2", "shutil.move", "os.rename", "os.replace", "os.symlink"}
_WRITE_METHODS = {"write_text", "write_bytes", "write", "writelines", "symlink_to",
                  "rename", "replace"}
_CI_VARS = {"CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "JENKINS_HOME", "BUILDKITE",
            "TRAVIS", "CIRCLECI", "TF_BUILD", "TEAMCITY_VERSION", "CODEBUILD_BUILD_ID",
            "BITBUCKET_BUILD_NUMBER", "DRONE", "GITHUB_WORKFLOW", "RUNNER_OS",
            "CONTINUOUS_INTEGRATION", "BUILD_ID"}
_TIME_CALLS = ("datetime.datetime.now", "datetime.datetime.today", "datetime.datetime.utcnow",
               "datetime.date.today", "time.time", "time.localtime", "time.gmtime",
               "time.strftime", "datetime.now", "date.today")
_HOST_CALLS = ("socket.gethostname", "platform.node", "getpass.getuser", "os.getlogin",
               "os.getuid", "os.uname", "platform.uname", "socket.getfqdn")
_ENV_READERS = {"os.getenv", "os.environ.get", "os.environ.__getitem__", "os.getenvb",
                "os.environ.setdefault", "os.environ.pop"}


class _Resolver:
    """Local names -> dotted module paths, from the module's imports."""

    def __init__(self, tree: ast.Module) -> None:
        self.names: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        self.names[a.asname] = a.name
                    else:
                        top = a.name.split(".")[0]
                        self.names[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    self.names[a.asname or a.name] = f"{node.module}.{a.name}"

    def qualname(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.names.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            fn = self.qualname(node.func)
            # __import__("os").system / importlib.import_module("os").system
            if fn in ("__import__", "importlib.import_module") and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value,
                                                                          str):
                return node.args[0].value
            # getattr(os, "system")
            if fn == "getattr" and len(node.args) >= 2 and isinstance(node.args[1],
                                                                      ast.Constant):
                base = self.qualname(node.args[0])
                return f"{base}.{node.args[1].value!s}" if base else None
        if isinstance(node, ast.Subscript):
            base = self.qualname(node.value)
            return f"{base}.__getitem__" if base else None
        return None


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


class _Walker:
    def __init__(self, tree: ast.Module, whole_classes: bool) -> None:
        self.tree = tree
        self.r = _Resolver(tree)
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                self.classes[node.name] = node
        self.whole_classes = whole_classes
        self.found: list[Behaviour] = []
        self.visited: set[str] = set()
        self.writes = False
        self.agent_refs: list[tuple[int, str, str | None]] = []

    # -- traversal ------------------------------------------------------------------------

    def run(self) -> list[Behaviour]:
        self.block(self.tree.body, None)
        if self.whole_classes:  # setuptools calls command classes' methods at install time
            for cls in self.classes.values():
                for item in cls.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self.block(item.body, None)
        if self.writes:
            for line, name, guard in self.agent_refs:
                self.add(AGENT_MEMORY, line, f"writes agent memory/instruction file {name}",
                         guard)
        return self.found

    def block(self, body: list[ast.stmt], guard: str | None) -> None:
        for stmt in body:
            self.stmt(stmt, guard)

    def stmt(self, stmt: ast.stmt, guard: str | None) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in stmt.decorator_list:
                self.expr(d, guard)
            return
        if isinstance(stmt, ast.ClassDef):
            for item in stmt.body:
                self.stmt(item, guard)
            return
        if isinstance(stmt, ast.If) and not self.whole_classes and _is_main_guard(stmt.test):
            self.block(stmt.orelse, guard)  # the body runs only as a script, not on import
            return
        if isinstance(stmt, (ast.If, ast.While)):
            trig = self.trigger(stmt.test)
            self.expr(stmt.test, guard)
            self.block(stmt.body, trig or guard)
            self.block(stmt.orelse, trig or guard)
            return
        if isinstance(stmt, ast.For) and self._is_environ(stmt.iter):
            self.add(SECRETS, stmt.lineno, "iterates over the whole environment", guard)
        if isinstance(stmt, ast.Try):
            self.block(stmt.body, guard)
            for h in stmt.handlers:
                self.block(h.body, guard)
            self.block(stmt.orelse, guard)
            self.block(stmt.finalbody, guard)
            return
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.stmt):
                self.stmt(child, guard)
            elif isinstance(child, ast.expr):
                self.expr(child, guard)
            elif isinstance(child, ast.withitem):
                self.expr(child.context_expr, guard)

    def expr(self, node: ast.expr, guard: str | None) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.IfExp):
                trig = self.trigger(sub.test)
                if trig:
                    self.expr(sub.body, trig)
                    self.expr(sub.orelse, trig)
            if isinstance(sub, ast.Call):
                self.call(sub, guard)
            elif isinstance(sub, ast.Name) and sub.id in self.functions and \
                    isinstance(sub.ctx, ast.Load):
                self.enter(sub.id, guard)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self.constant(sub, guard)
            elif isinstance(sub, ast.Lambda):
                pass

    def enter(self, name: str, guard: str | None) -> None:
        key = f"{name}|{guard}"
        if key in self.visited:
            return
        self.visited.add(key)
        self.block(self.functions[name].body, guard)

    # -- classification -----------------------------------------------------------------

    def add(self, kind: str, line: int, detail: str, guard: str | None) -> None:
        b = Behaviour(kind, line, detail, guard)
        if b not in self.found:
            self.found.append(b)

    def call(self, node: ast.Call, guard: str | None) -> None:
        q = self.r.qualname(node.func) or ""
        line = node.lineno
        if q.startswith(_NETWORK_PREFIXES):
            self.add(NETWORK, line, f"calls {q}", guard)
        if q in _PROCESS or q.startswith(_PROCESS_PREFIXES):
            self.add(PROCESS, line, f"calls {q}", guard)
        if q in _EXEC or (q.endswith((".exec", ".eval")) and q.startswith("builtins")):
            self.exec_call(node, q, guard)
        if q in _ENV_READERS and node.args:
            self.env_read(node.args[0], line, guard)
        if q in ("dict", "json.dumps", "str", "repr", "list") and node.args and \
                self._is_environ(node.args[0]):
            self.add(SECRETS, line, f"copies the whole environment ({q}(os.environ))", guard)
        if q in ("os.environ.copy", "os.environ.items", "os.environ.values",
                 "os.environ.keys"):
            self.add(SECRETS, line, f"reads the whole environment ({q})", guard)
        if self._writes(node, q):
            self.writes = True
            if self._outside(node):
                self.add(OUTSIDE_WRITE, line, f"writes outside the package ({q or 'write'})",
                         guard)

    def exec_call(self, node: ast.Call, q: str, guard: str | None) -> None:
        if not node.args or isinstance(node.args[0], ast.Constant):
            return
        inner = [self.r.qualname(c.func) or "" for c in ast.walk(node.args[0])
                 if isinstance(c, ast.Call)]
        decoded = [c for c in inner if c.startswith(_DECODERS) or c.endswith(
            (".decode", "b64decode", "fromhex", "decompress", "loads"))]
        remote = [c for c in inner if c.startswith(_REMOTE)]
        if decoded or remote:
            what = ", ".join(sorted(set(decoded + remote))[:3])
            self.add(OBFUSCATED_EXEC, node.lineno, f"{q}() of decoded or downloaded code "
                     f"({what})", guard)
        else:
            self.add(DYNAMIC_EXEC, node.lineno, f"{q}() of a computed string", guard)

    def env_read(self, arg: ast.expr, line: int, guard: str | None) -> None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            name = arg.value.upper()
            if any(w in name for w in _SECRET_ENV_WORDS):
                self.add(SECRETS, line, f"reads secret environment variable {arg.value}",
                         guard)

    def constant(self, node: ast.Constant, guard: str | None) -> None:
        text = str(node.value)
        low = text.lower()
        if len(low) > 4096:
            return
        for p in _SECRET_PATHS:
            if p in low:
                self.add(SECRETS, node.lineno, f"references {p!r}", guard)
                break
        for a in _AGENT_FILES:
            if a in low:
                self.agent_refs.append((node.lineno, a, guard))
                break

    def _writes(self, node: ast.Call, q: str) -> bool:
        if q in ("open", "io.open", "codecs.open"):
            mode = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), None)
            return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and \
                any(c in mode.value for c in "wax+")
        if q in _WRITE_CALLS:
            return q != "os.open"
        return isinstance(node.func, ast.Attribute) and node.func.attr in _WRITE_METHODS \
            and node.func.attr != "write"

    def _outside(self, node: ast.Call) -> bool:
        for sub in ast.walk(node):
            q = self.r.qualname(sub.func) if isinstance(sub, ast.Call) else None
            if q and (q.endswith("expanduser") or q.endswith("Path.home")
                      or q == "os.path.expandvars"):
                return True
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and \
                    (sub.value.startswith(("~", "/", "\\\\")) or sub.value[1:3] == ":\\"):
                return True
        return False

    def _is_environ(self, node: ast.AST) -> bool:
        return self.r.qualname(node) == "os.environ"

    def trigger(self, test: ast.expr) -> str | None:
        """Describe a condition that makes code run only in some environments."""
        for sub in ast.walk(test):
            if isinstance(sub, ast.Call):
                q = self.r.qualname(sub.func) or ""
                if q in _ENV_READERS and sub.args and isinstance(sub.args[0], ast.Constant) \
                        and str(sub.args[0].value) in _CI_VARS:
                    return f"runs only when {sub.args[0].value!s} is set"
                if q.startswith(_TIME_CALLS) or q.endswith(tuple("." + t.split(".")[-1]
                                                                  for t in ("now", "today"))):
                    return f"runs only at certain dates/times ({q})"
                if q in _HOST_CALLS:
                    return f"runs only on certain hosts/users ({q})"
            if isinstance(sub, ast.Compare):
                for part in [sub.left, *sub.comparators]:
                    if isinstance(part, ast.Constant) and str(part.value) in _CI_VARS and \
                            any(self._is_environ(c) for c in [sub.left, *sub.comparators]):
                        return f"runs only when {part.value!s} is set"
            if isinstance(sub, ast.Subscript) and self._is_environ(sub.value):
                key = sub.slice
                if isinstance(key, ast.Constant) and str(key.value) in _CI_VARS:
                    return f"runs only when {key.value!s} is set"
        return None


def _is_main_guard(test: ast.expr) -> bool:
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and \
        test.left.id == "__name__" and len(test.comparators) == 1 and \
        isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__"


MAX_SOURCE = 2 << 20


class SourceError(Exception):
    pass


def analyse(source: str, filename: str, install_time: bool = False) -> list[Behaviour]:
    """Behaviours of the code that runs when this file is imported (or, with
    ``install_time``, when setup.py runs, including command-class methods)."""
    if len(source) > MAX_SOURCE:
        raise SourceError(f"{filename}: larger than {MAX_SOURCE} bytes")
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise SourceError(f"{filename}: not parsable as Python 3 ({exc.__class__.__name__}: "
                          f"{getattr(exc, 'msg', exc)})") from exc
    try:
        return _Walker(tree, whole_classes=install_time).run()
    except RecursionError as exc:
        raise SourceError(f"{filename}: nesting too deep to analyse") from exc


def cmdclass_overrides(source: str) -> list[tuple[int, str]]:
    """(line, command) for each command a setup() call's cmdclass replaces."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "cmdclass":
            value = node.value
            if isinstance(value, ast.Dict):
                for k in value.keys:
                    if isinstance(k, ast.Constant):
                        out.append((getattr(k, "lineno", 0), str(k.value)))
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
                    value.func.id == "dict":
                out += [(value.lineno, str(kw.arg)) for kw in value.keywords if kw.arg]
            else:
                out.append((value.lineno, "(computed)"))
    return out
