"""Remote code: the Python files that ``trust_remote_code=True`` (transformers auto_map,
custom pipelines, diffusers custom components) and ``torch.hub.load`` (hubconf.py) import.

The source is parsed with the ast module and never imported, compiled to bytecode or run.
Behaviours (network, secrets, metadata addresses, processes, exec of decoded code, writes
outside the repository or to agent memory files) are found by ``pyast.collect``; this
module turns them into findings under one verdict policy (docs/remote-code.md):

- *at import time* means reachable when the module is imported: module-level statements,
  class bodies, decorators, default arguments, and same-file functions they call (followed
  transitively); ``if __name__ == "__main__":`` is not run on import;
- *at load time* means reachable from what loading runs right after the import: the
  construction methods (``__init__``, ``post_init``, ``_init_weights``, ``from_pretrained``
  ...) of the classes ``from_pretrained`` instantiates (per file: classes deriving from
  transformers/diffusers model, config, tokenizer, processor and pipeline bases or
  ``nn.Module``; per repository: the classes auto_map names, see ``load_time_findings``),
  and the public functions of ``hubconf.py`` that ``torch.hub.load`` calls. It is rated
  like import time;
- exfiltration (network together with secrets, credential files, the whole environment or
  host facts) at import or load time, metadata-address access, process spawning at import
  or load time, exec of decoded/downloaded code, shell download-and-run payloads, and
  writes to agent memory or persistence locations are malicious;
- the same behaviours only inside other functions are suspicious, because a model's
  forward path may call them but nothing runs them on load.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict

from mlwarden.report.model import Finding, Location, Severity, Verdict
from mlwarden.report.rules import RULES, Rule, rule
from mlwarden.scan.context import Limits, MiB, ScanContext
from mlwarden.scan.pyast import collect as c
from mlwarden.scan.pyast.resolve import Resolver

# Real modeling files are below 1 MiB; the AST of a huge file costs ~20x its size.
MAX_PYTHON_BYTES = 16 * MiB
MAX_FINDINGS_PER_RULE = 25
MAX_SIDE_EFFECTS = 10
MAX_FUNCTIONS_FOR_CLOSURES = 3_000
# The AST costs ~200 bytes per token: 8 MiB of "1 + 1 + ..." took 865 MiB and 6 s to parse
# (found by fuzzing). A 200 KiB modeling file has ~40k tokens; the bound is counted with
# a C-speed regex (an over-estimate: words inside strings count too) before parsing.
MAX_PYTHON_TOKENS = 1_000_000
_TOKENS = re.compile(rb"\w+|[^\w\s]")

_M, _S, _U, _C = Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.UNSCANNABLE, Verdict.CLEAN

CODE_UNPARSEABLE = rule(
    "code-unparseable", _U, Severity.MEDIUM, "Python source does not parse",
    "The file is not valid Python for this interpreter, so it was not analysed. Another "
    "Python version might still import it.")
EXFILTRATION = rule(
    "code-exfiltration", _M, Severity.CRITICAL,
    "Secrets or host data sent over the network at import or load time",
    "Code that runs on import (module level, or same-file functions it calls) or on load "
    "(__init__/post_init/_init_weights/from_pretrained of the classes from_pretrained "
    "instantiates, hubconf entry points) both reads secrets (secret-named environment "
    "variables, the whole environment, credential files, host facts) and opens a network "
    "connection. trust_remote_code=True / torch.hub.load runs it on load.")
POSSIBLE_EXFILTRATION = rule(
    "code-possible-exfiltration", _S, Severity.HIGH,
    "A function reads secrets and uses the network",
    "Not run on import, but a forward pass or helper may call it; review what it sends.")
METADATA_ACCESS = rule(
    "code-metadata-access", _M, Severity.CRITICAL,
    "Cloud metadata service contacted (credential theft)",
    "169.254.169.254, metadata.google.internal, fd00:ec2::254 and 100.100.100.200 serve "
    "cloud credentials to anything on the host. Model code that uses such an address in "
    "code that also makes network calls (at import time or in the same function) is "
    "stealing instance credentials. Addresses built by concatenation or encodings count.")
METADATA_ADDRESS = rule(
    "code-metadata-address", _S, Severity.HIGH,
    "Cloud metadata address in code",
    "The address appears, but no network call was seen next to it (for example a "
    "blocklist). Model code has no reason to name it.")
IMPORT_PROCESS = rule(
    "code-import-process", _M, Severity.CRITICAL, "Starts a process at import or load time",
    "subprocess, os.system, os.popen, os.exec*, os.spawn*, pty.spawn reached on import, or "
    "from the construction of the classes from_pretrained instantiates, or from a hubconf "
    "entry point: loading the model runs a command.")
PROCESS = rule(
    "code-process", _S, Severity.HIGH, "Starts a process",
    "A function starts a command (subprocess, os.system, ...). Kernel builds do this; "
    "review the command.")
SHELL_PAYLOAD = rule(
    "code-shell-payload", _M, Severity.CRITICAL, "Runs a download-and-execute shell payload",
    "A command pipes a download into a shell (curl|sh), opens a reverse shell (/dev/tcp, "
    "nc -e, bash -i) or runs encoded PowerShell. Malicious wherever it appears.")
EXEC_PAYLOAD = rule(
    "code-exec-payload", _M, Severity.CRITICAL,
    "Executes decoded, unmarshalled or downloaded code",
    "exec/eval/compile/FunctionType/pickle.loads applied to base64, hex, zlib, rot13, "
    "marshal or network data hides code from review. Malicious wherever it appears.")
DYNAMIC_EXEC = rule(
    "code-dynamic-exec", _S, Severity.MEDIUM, "Executes code built at run time",
    "exec, eval, compile, runpy or exec_module of something that is not visible source.")
DYNAMIC_IMPORT = rule(
    "code-dynamic-import", _S, Severity.LOW, "Imports a module by a computed or hidden name",
    "__import__/importlib.import_module with a name built at run time or spelled "
    "indirectly ('o'+'s').")
BUILTINS_ACCESS = rule(
    "code-builtins-access", _S, Severity.MEDIUM, "Reaches into __builtins__",
    "Looking exec/eval/open up through __builtins__ or builtins.__dict__ is how code hides "
    "which builtin it calls.")
UNMARSHAL = rule(
    "code-unmarshal", _S, Severity.HIGH, "Unmarshals data into code objects",
    "marshal.loads builds code objects; model code has no use for it.")
NATIVE = rule(
    "code-native-extension", _S, Severity.MEDIUM, "Loads or compiles native code",
    "ctypes libraries and torch.utils.cpp_extension builds run native code outside any "
    "Python-level review.")
IMPORT_NETWORK = rule(
    "code-import-network", _S, Severity.HIGH, "Network access at import or load time",
    "Loading the model (import, or constructing the classes it loads) opens a connection "
    "or resolves a name, with nothing sensitive seen in the same code. Model code does not "
    "need the network to import.")
NETWORK = rule(
    "code-network", _S, Severity.MEDIUM, "Network access in a function",
    "A function opens connections (requests, urllib, sockets, Hub uploads ...). Image "
    "processors sometimes fetch URLs; anything else deserves review.")
SECRET_READ = rule(
    "code-secret-read", _S, Severity.MEDIUM, "Reads secrets or credential files",
    "Secret-named environment variables (TOKEN, KEY, SECRET, PASSWORD, AWS_*, HF_TOKEN, "
    "OPENAI ...), the whole environment, or paths such as ~/.ssh, ~/.aws/credentials, "
    "~/.netrc, ~/.cache/huggingface/token, /etc/passwd.")
WRITE_OUTSIDE = rule(
    "code-write-outside", _S, Severity.MEDIUM, "Writes outside the repository",
    "A write to an absolute path, the home directory or a '..' path. Loaders run remote "
    "code with the user's working directory and permissions.")
PERSISTENCE_WRITE = rule(
    "code-persistence-write", _M, Severity.CRITICAL,
    "Writes to a persistence location",
    "site-packages, .pth files, sitecustomize, shell rc files, crontab, authorized_keys, "
    "autostart/systemd units or git hooks: code that survives the model and runs later. "
    "Malicious wherever it appears.")
AGENT_MEMORY_WRITE = rule(
    "code-agent-memory-write", _M, Severity.CRITICAL,
    "Writes to AI agent memory or instruction files",
    "CLAUDE.md, AGENTS.md, GEMINI.md, .cursorrules, .cursor/rules, .windsurfrules, "
    ".github/copilot-instructions.md, memory.md, .mcp.json, ~/.claude: instructions that "
    "coding agents obey later (prompt-injection persistence). Malicious wherever it appears.")
NETWORK_MODULE = rule(
    "code-network-module", _C, Severity.INFO, "Imports a network module",
    "Context only: no network call through it was recognised.")
IMPORT_SIDE_EFFECT = rule(
    "code-import-side-effect", _C, Severity.INFO, "Statement with effects runs at import",
    "Module-level code other than imports, definitions, constants, logging setup and "
    "registration. Dangerous effects get their own findings; this lists the rest.")

_KIND_RULES: dict[str, tuple[Rule, Rule]] = {  # kind -> (at import time, in a function)
    c.NETWORK: (IMPORT_NETWORK, NETWORK),
    c.SECRET: (SECRET_READ, SECRET_READ),
    c.PROCESS: (IMPORT_PROCESS, PROCESS),
    c.SHELL_PAYLOAD: (SHELL_PAYLOAD, SHELL_PAYLOAD),
    c.NATIVE: (NATIVE, NATIVE),
    c.DYN_EXEC: (DYNAMIC_EXEC, DYNAMIC_EXEC),
    c.EXEC_PAYLOAD: (EXEC_PAYLOAD, EXEC_PAYLOAD),
    c.DYN_IMPORT: (DYNAMIC_IMPORT, DYNAMIC_IMPORT),
    c.BUILTINS: (BUILTINS_ACCESS, BUILTINS_ACCESS),
    c.UNMARSHAL: (UNMARSHAL, UNMARSHAL),
    c.WRITE_OUTSIDE: (WRITE_OUTSIDE, WRITE_OUTSIDE),
    c.PERSISTENCE: (PERSISTENCE_WRITE, PERSISTENCE_WRITE),
    c.AGENT_MEMORY: (AGENT_MEMORY_WRITE, AGENT_MEMORY_WRITE),
}
_SENSITIVE = (c.SECRET, c.RECON)

# transformers.dynamic_module_utils.get_relative_imports: loaders find the files a module
# needs with these regexes (not the ast), so the repository summary mirrors them exactly.
_REL_IMPORT = re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE)
_REL_FROM = re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE)


def relative_imports(text: str) -> list[str]:
    """Module names transformers would fetch alongside a remote-code file."""
    return sorted(set(_REL_IMPORT.findall(text)) | set(_REL_FROM.findall(text)))


def analyze_python(data: bytes, ctx: ScanContext) -> None:
    """Analyse one Python source file; report through ``ctx``."""
    ctx.format = "python"
    tree = _parse(data, ctx)
    if tree is None:
        return
    try:
        resolver = Resolver(tree)
        collector = c.Collector(tree, resolver)
        collector.run()
    except RecursionError:
        ctx.report(CODE_UNPARSEABLE, "source nested too deeply to analyse", Location(line=1))
        return
    _report(collector, ctx, load_roots(tree, resolver, hubconf=is_hubconf(ctx.display_path)))
    for line, col, what in module_side_effects(tree, resolver)[:MAX_SIDE_EFFECTS]:
        ctx.report(IMPORT_SIDE_EFFECT, f"runs at import: {what}", Location(line=line,
                                                                           column=col))


def _parse(data: bytes, ctx: ScanContext) -> ast.Module | None:
    """The syntax tree within the analysis bounds, or None (reported on ``ctx``)."""
    limit = min(MAX_PYTHON_BYTES, ctx.limits.max_text_bytes)
    if len(data) > limit:
        ctx.limit(f"Python source of {len(data)} bytes exceeds the {limit}-byte analysis bound")
        return None
    tokens = _count_tokens(data, MAX_PYTHON_TOKENS) if len(data) > MAX_PYTHON_TOKENS else 0
    if tokens > MAX_PYTHON_TOKENS:
        ctx.limit(f"Python source of about {tokens} tokens exceeds the {MAX_PYTHON_TOKENS}-token "
                  "analysis bound")
        return None
    try:
        return ast.parse(data, filename=ctx.display_path)
    except SyntaxError as exc:
        ctx.report(CODE_UNPARSEABLE, f"syntax error: {exc.msg}",
                   Location(line=exc.lineno or 1, column=exc.offset or None))
    except (ValueError, RecursionError, MemoryError) as exc:
        ctx.report(CODE_UNPARSEABLE, f"cannot parse: {type(exc).__name__}: {exc}",
                   Location(line=1))
    return None


def _count_tokens(data: bytes, bound: int) -> int:
    """Words and symbols, counted in 64 KiB slices (subn's pieces stay few) up to ``bound``."""
    n = 0
    for i in range(0, len(data), 1 << 16):
        n += _TOKENS.subn(b"", data[i : i + (1 << 16)])[1]
        if n > bound:
            break
    return n


def _report(col: c.Collector, ctx: ScanContext, roots: dict[str, str]) -> None:
    """Findings under the verdict policy; ``roots`` are the load-time entry points
    (function key -> what runs it, e.g. "from_pretrained instantiates EvilModel")."""
    edges = col.edges()
    at_import = c.reachable(edges, c.MODULE)
    # scope -> (entry point, why) for code run on load but not on import
    at_load: dict[str, tuple[str, str]] = {}
    load_reach: dict[str, set[str]] = {}
    for root, why in roots.items():
        if root in col.functions and root not in at_import:
            load_reach[root] = c.reachable(edges, root) - at_import
            for scope in sorted(load_reach[root]):
                at_load.setdefault(scope, (root, why))
    events = col.events
    counts: dict[str, int] = defaultdict(int)

    def emit(r: Rule, message: str, e: c.Event) -> None:
        counts[r.id] += 1
        if counts[r.id] <= MAX_FINDINGS_PER_RULE:
            ctx.report(r, message, Location(line=e.line, column=e.col))

    def where(e: c.Event) -> str:
        if e.scope in at_import:
            return "at import time" if e.scope == c.MODULE else \
                f"at import time (in {e.scope}, called on import)"
        if e.scope in at_load:
            root, why = at_load[e.scope]
            via = "" if root == e.scope else f", called from {root}"
            return f"at load time (in {e.scope}{via}): runs when {why}"
        if e.scope == c.MAIN:
            return "under if __name__ == '__main__' (not run on import)"
        return f"in {e.scope}()"

    closures: dict[str, set[str]] = {}

    def closure(scope: str) -> set[str]:
        if scope not in closures:
            closures[scope] = ({scope} if len(col.functions) > MAX_FUNCTIONS_FOR_CLOSURES
                               else c.reachable(edges, scope))
        return closures[scope]

    by_scope: dict[str, list[c.Event]] = defaultdict(list)
    for e in events:
        by_scope[e.scope].append(e)

    def events_in(scopes: set[str], kinds: tuple[str, ...]) -> list[c.Event]:
        return sorted((e for s in scopes for e in by_scope.get(s, ()) if e.kind in kinds),
                      key=lambda e: (e.line, e.col))

    handled: set[int] = set()  # network events already explained by an exfiltration finding
    import_net = events_in(at_import, (c.NETWORK,))
    import_sensitive = events_in(at_import, _SENSITIVE)
    if import_net and import_sensitive:
        s = import_sensitive[0]
        for n in import_net:
            emit(EXFILTRATION, f"{n.detail} {where(n)} while the same import-time code "
                 f"{s.detail} (line {s.line})", n)
            handled.add(id(n))
    for scopes in load_reach.values():  # load time: the entry point's code and import
        nets = [n for n in events_in(scopes, (c.NETWORK,)) if id(n) not in handled]
        sens = events_in(scopes | at_import, _SENSITIVE)
        for n in nets if sens else ():
            emit(EXFILTRATION, f"{n.detail} {where(n)}; the same load-time code "
                 f"{sens[0].detail} (line {sens[0].line})", n)
            handled.add(id(n))
    for e in events:
        if e.kind != c.NETWORK or id(e) in handled or e.scope in at_import \
                or e.scope in at_load:
            continue
        sens = events_in(closure(e.scope), _SENSITIVE)
        if sens:
            emit(POSSIBLE_EXFILTRATION, f"{e.detail} {where(e)}; the same code {sens[0].detail} "
                 f"(line {sens[0].line})", e)
            handled.add(id(e))

    for e in events:
        if e.kind == c.METADATA:
            scopes = at_import if e.scope in at_import else closure(e.scope)
            same = e.scope
            nets = sorted(events_in(scopes, (c.NETWORK,)),
                          key=lambda n: (n.scope != same, n.line))
            if nets:
                emit(METADATA_ACCESS, f"{e.detail} {where(e)}, with {nets[0].detail} "
                     f"(line {nets[0].line})", e)
            else:
                emit(METADATA_ADDRESS, f"{e.detail} {where(e)}", e)
        elif e.kind == c.NETWORK_IMPORT:
            emit(NETWORK_MODULE, f"imports {e.detail}", e)
        elif e.kind in _KIND_RULES and id(e) not in handled:
            imp_rule, fn_rule = _KIND_RULES[e.kind]
            r = imp_rule if e.scope in at_import or e.scope in at_load else fn_rule
            emit(r, f"{e.detail} {where(e)}", e)
    for rid, total in counts.items():
        if total > MAX_FINDINGS_PER_RULE:
            ctx.report(RULES[rid], f"{total - MAX_FINDINGS_PER_RULE} more {rid} findings "
                       "not listed", Location(line=1))


# ---------------------------------------------------------------------- load-time entry points

# Bases whose subclasses loaders instantiate: from_pretrained builds the config, the model
# (whose __init__ builds its nn.Module parts and calls post_init -> _init_weights), the
# tokenizer, processor or pipeline. Matched on the last part of the qualified name.
LOADED_BASES = frozenset({
    "PreTrainedModel", "PretrainedConfig", "PreTrainedConfig", "PreTrainedTokenizer",
    "PreTrainedTokenizerFast", "PreTrainedTokenizerBase", "TokenizersBackend", "PythonBackend",
    "SentencePieceBackend", "ProcessorMixin", "BaseImageProcessor", "BaseImageProcessorFast",
    "ImageProcessingMixin", "FeatureExtractionMixin", "SequenceFeatureExtractor",
    "BaseVideoProcessor", "Pipeline", "DiffusionPipeline", "ModelMixin", "ConfigMixin",
    "SchedulerMixin", "FlaxPreTrainedModel", "TFPreTrainedModel",
})
NN_MODULE = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
# Methods that run while an instance is loaded and built (transformers calls post_init ->
# init_weights -> _initialize_weights -> _init_weights, and tie_weights).
LOAD_METHODS = (
    "__init__", "__new__", "__post_init__", "__setattr__", "__getattr__", "post_init",
    "_init_weights", "init_weights", "_initialize_weights", "tie_weights", "_tie_weights",
    "from_pretrained", "_from_config", "from_dict", "get_config_dict",
)
MAX_INHERITED = 50  # bases in sibling modules one load_time_findings call hands back


def is_hubconf(display_path: str) -> bool:
    """torch.hub.load imports ``hubconf.py`` at the repository root (also in archives)."""
    return re.split(r"[/\\!]", display_path)[-1] == "hubconf.py"


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}


def _ancestors(classes: dict[str, ast.ClassDef], name: str) -> list[str]:
    """``name`` and its same-file base classes, transitively (super().__init__ runs them)."""
    out: list[str] = []
    stack = [name]
    while stack:
        n = stack.pop()
        if n in out or n not in classes:
            continue
        out.append(n)
        stack.extend(b.id for b in classes[n].bases if isinstance(b, ast.Name))
    return out


def _why_loaded(classes: dict[str, ast.ClassDef], name: str, resolver: Resolver) -> str | None:
    for anc in _ancestors(classes, name):
        for base in classes[anc].bases:
            q = resolver.qualify(base)
            if q is None:
                continue
            if q.rsplit(".", 1)[-1] in LOADED_BASES:
                return f"from_pretrained instantiates {name}"
            if q in NN_MODULE:
                return f"the model builds {name} (an nn.Module)"
    return None


def load_roots(tree: ast.Module, resolver: Resolver, hubconf: bool) -> dict[str, str]:
    """Load-time entry points one file shows on its own: construction methods of classes
    deriving from loaded bases (and of their same-file ancestors), and, in hubconf.py, the
    public top-level functions and classes torch.hub.load calls."""
    classes = _classes(tree)
    roots: dict[str, str] = {}
    for name in classes:
        why = _why_loaded(classes, name, resolver)
        if why is not None:
            _add_class_roots(classes, name, why, roots)
    if hubconf:
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and not stmt.name.startswith("_"):
                roots.setdefault(stmt.name, f"torch.hub.load calls the entry point {stmt.name}")
            elif isinstance(stmt, ast.ClassDef) and not stmt.name.startswith("_"):
                _add_class_roots(classes, stmt.name,
                                 f"torch.hub.load calls the entry point {stmt.name}", roots)
    return roots


def _add_class_roots(classes: dict[str, ast.ClassDef], name: str, why: str,
                     roots: dict[str, str]) -> None:
    for anc in _ancestors(classes, name):
        for m in LOAD_METHODS:
            roots.setdefault(f"{anc}.{m}", why)


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
    tree = _parse(data, ctx)
    if tree is None:
        return [], []
    try:
        resolver = Resolver(tree)
        collector = c.Collector(tree, resolver)
        collector.run()
    except RecursionError:
        return [], []
    defined = _classes(tree)
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
        _add_class_roots(defined, name, why, roots)
        for anc in _ancestors(defined, name):
            for b in defined[anc].bases:
                if isinstance(b, ast.Name) and b.id not in defined and b.id in siblings:
                    inherited.append((*siblings[b.id], why))
    for key, why in load_roots(tree, resolver, is_hubconf(display_path)).items():
        roots.setdefault(key, why)
    _report(collector, ctx, roots)
    seen = {_where_key(f) for f in already}
    new = [f for f in ctx.findings if f.verdict is Verdict.MALICIOUS
           and _where_key(f) not in seen]
    return new, inherited[:MAX_INHERITED]


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
                if c._is_main_check(stmt.test):
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
