"""Verdict policy: behaviour events plus the phase they run in -> rules.

Phases: ``install`` (setup.py, the command classes pip runs, in-tree build backends),
``startup`` (.pth lines), ``import`` (module-level code of any module and what it calls,
across the program), ``load`` (remote code: construction of the classes loaders
instantiate, hubconf entry points). Code that none of them reaches runs only if a function
is called (``function``), or only as a script (``__main__``, release commands).

Two profiles share the events and differ in what is an alarm:

- ``model`` (remote code that ``trust_remote_code``/``torch.hub`` runs): an allowlist stance
  at import and load time (processes, exec of any string, string dispatch, evaluation in
  disguise, namespace walks, libc are malicious there); the same in a function is
  suspicious;
- ``package`` (wheels, sdists, installed distributions): behaviour at install, start-up or
  import time is judged; what a library's functions would do if called is not an alarm,
  except for payloads no library contains (decoded exec, shell payloads, injection,
  packed code, infostealing together with a send).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mlwarden.behaviour import collect as c
from mlwarden.behaviour import rules as R
from mlwarden.behaviour.program import Node, Program
from mlwarden.report.rules import RULES, Rule

MAX_FINDINGS_PER_RULE = 25
MAX_FUNCTIONS_FOR_CLOSURES = 3_000
PHASES = ("install", "startup", "import", "load")
_PHASE_TEXT = {"install": "at install time", "startup": "at interpreter start (.pth)",
               "import": "at import time", "load": "at load time"}
MODEL, PACKAGE = "model", "package"

# kind -> (model at run time, model in a function, package at run time, package in a function)
_R = Rule | None
TABLE: dict[str, tuple[_R, _R, _R, _R]] = {
    c.SECRET: (R.SECRET_READ, R.SECRET_READ, None, None),  # packages: with a send only
    c.PROCESS: (R.IMPORT_PROCESS, R.PROCESS, R.PROCESS, None),
    c.SHELL_PAYLOAD: (R.SHELL_PAYLOAD, R.SHELL_PAYLOAD, R.SHELL_PAYLOAD, R.SHELL_PAYLOAD),
    c.NATIVE: (R.NATIVE, R.NATIVE, None, None),
    c.DYN_EXEC: (R.LOAD_EXEC, R.DYNAMIC_EXEC, R.DYNAMIC_EXEC, None),
    c.EXEC_PAYLOAD: (R.EXEC_PAYLOAD, R.EXEC_PAYLOAD, R.EXEC_PAYLOAD, R.EXEC_PAYLOAD),
    c.EXEC_FILE: (R.LOAD_EXEC, R.DYNAMIC_EXEC, R.EXEC_FILE, None),
    c.DYN_IMPORT: (R.DYNAMIC_IMPORT, R.DYNAMIC_IMPORT, None, None),
    c.BUILTINS: (R.BUILTINS_ACCESS, R.BUILTINS_ACCESS, None, None),
    c.UNMARSHAL: (R.UNMARSHAL, R.UNMARSHAL, R.UNMARSHAL, None),
    c.WRITE_OUTSIDE: (R.WRITE_OUTSIDE, R.WRITE_OUTSIDE, R.WRITE_OUTSIDE, None),
    c.PERSISTENCE: (R.PERSISTENCE_WRITE, R.PERSISTENCE_WRITE, R.PERSISTENCE_WRITE, None),
    c.AGENT_MEMORY: (R.AGENT_MEMORY_WRITE, R.AGENT_MEMORY_WRITE, R.AGENT_MEMORY_WRITE,
                     R.AGENT_MEMORY_WRITE),
    c.INJECTION: (R.INJECTION, R.INJECTION, R.INJECTION, R.INJECTION),
    c.DNS_EXFIL: (R.DNS_EXFILTRATION, None, R.DNS_EXFILTRATION, None),
    c.PACKED: (R.PACKED, R.PACKED, R.PACKED, R.PACKED),
    c.DISPATCH: (R.LOAD_DISPATCH, R.STRING_DISPATCH, None, None),
    c.EVAL_DISGUISE: (R.LOAD_EXEC, R.EVAL_DISGUISE, None, None),
    c.NAMESPACE: (R.LOAD_DISPATCH, R.NAMESPACE_WALK, None, None),
    c.LIBC: (R.LOAD_NATIVE, R.NATIVE, None, None),
    c.OBFUSCATED_NAME: (R.OBFUSCATED, R.OBFUSCATED, R.OBFUSCATED, R.OBFUSCATED),
    c.NETWORK_IMPORT: (R.NETWORK_MODULE, R.NETWORK_MODULE, None, None),
    c.OBFUSCATED_CALL: (R.OBFUSCATED_CALL, R.OBFUSCATED_CALL, R.OBFUSCATED_CALL,
                        R.OBFUSCATED_CALL),
}
_SENSITIVE = (c.SECRET, c.RECON)
_WITH_NETWORK = frozenset({c.SECRET, c.RECON, c.ENDPOINT, c.DROP, c.METADATA})
_RUNS_NATIVE = frozenset({c.NATIVE, c.LIBC, c.PROCESS})


def _combines(kinds: frozenset[str], pkg: bool) -> bool:
    """Whether a root's reachable event kinds can form a combination finding (only then
    is its closure computed: on big packages most roots reach nothing that combines)."""
    if c.NETWORK in kinds and kinds & _WITH_NETWORK:
        return True
    return c.DROP in kinds and bool(kinds & _RUNS_NATIVE)
# First word of commands that are ordinary build and release steps in setup.py.
BUILD_TOOLS = frozenset({
    "cmake", "make", "gmake", "ninja", "meson", "pkg-config", "pkgconf", "git", "hg", "gcc",
    "g++", "cc", "c++", "clang", "clang++", "cl", "cl.exe", "nvcc", "hipcc", "cython",
    "swig", "ar", "ld", "strip", "xcrun", "sw_vers", "uname", "lsb_release", "ldconfig",
    "brew", "pg_config", "mysql_config", "pip", "twine", "npm", "yarn", "pnpm", "node",
    "cargo", "rustc", "go", "protoc", "llvm-config", "icu-config", "xml2-config",
    "xslt-config", "autoreconf", "autoconf", "./configure", "configure", "nproc", "sysctl",
    "getconf", "mpicc", "where", "which", "lipo", "install_name_tool", "otool", "patchelf",
    "gfortran", "f2py", "sphinx-build", "cp", "mkdir", "tar", "python", "python3",
    "mt", "rc", "link", "dumpbin", "vswhere", "vcvarsall.bat", "hipconfig", "nvidia-smi",
    "rocm-smi", "ccache", "sccache", "maturin", "flit", "hatch", "poetry", "bash", "sh",
    "touch",
})


# Probes libraries run at import time: compiler, font and TeX lookups, platform queries
# (numpy.distutils: gcc -print-multiarch; matplotlib: fc-list, kpsewhich, system_profiler).
IMPORT_PROBES = frozenset({
    "gcc", "cc", "clang", "g++", "c++", "pkg-config", "git", "uname", "sw_vers",
    "lsb_release", "ldconfig", "nvidia-smi", "rocm-smi", "nvcc", "hipconfig", "fc-list",
    "fc-match", "kpsewhich", "luatex", "system_profiler", "sysctl", "getconf", "nproc",
    "xcrun", "where", "which", "llvm-config", "dvipng", "gs", "gswin32c", "gswin64c",
    "inkscape", "latex", "dvips", "ffmpeg", "pdftocairo", "mpicc", "locale",
})


@dataclass(frozen=True)
class Root:
    node: Node
    phase: str  # one of PHASES
    why: str


@dataclass(frozen=True)
class Verdicted:
    module: str  # Module.key
    rule: Rule
    message: str
    line: int
    column: int
    event: c.Event | None = None


def judge(program: Program, roots: Iterable[Root], profile: str) -> list[Verdicted]:
    pkg = profile == PACKAGE
    roots = sorted(roots, key=lambda r: PHASES.index(r.phase))
    by_node: dict[Node, list[c.Event]] = defaultdict(list)
    for key, m in program.modules.items():
        for e in m.events:
            by_node[(key, e.scope)].append(e)
    # Phase of every node some root reaches: the first root (by phase order) wins; one
    # breadth-first pass per phase from all of its roots.
    phase_of: dict[Node, tuple[Root, Node]] = {}
    for stage in PHASES:
        queue = [r for r in roots if r.phase == stage]
        frontier = [(r.node, r) for r in queue]
        seen: set[Node] = set()
        while frontier:
            nxt: list[tuple[Node, Root]] = []
            for node, root in frontier:
                if node in seen:
                    continue
                seen.add(node)
                phase_of.setdefault(node, (root, node))
                nxt.extend((t, root) for t in program.successors(node) if t not in seen)
            frontier = nxt
    # Combinations need a root's whole closure; compute it only for roots whose reachable
    # event kinds can combine (kinds per node come from one linear SCC pass).
    kinds_of = {n: frozenset(e.kind for e in evs) for n, evs in by_node.items()}
    reach_kinds = program.reach_kinds([r.node for r in roots], kinds_of)
    closures: list[tuple[Root, set[Node]]] = []
    import_nodes: dict[str, set[Node]] = {}  # module -> its import-time closure
    import_kinds: dict[str, frozenset[str]] = {
        r.node[0]: reach_kinds.get(r.node, frozenset()) for r in roots if r.phase == "import"}
    for root in roots:
        kinds = reach_kinds.get(root.node, frozenset())
        if root.phase == "load" and not pkg:  # load time adds what import time read
            kinds = kinds | import_kinds.get(root.node[0], frozenset())
        if not _combines(kinds, pkg):
            continue
        reached = program.reach([root.node])
        closures.append((root, reached))
    for root in roots:
        if root.phase == "import" and any(r.phase == "load" and r.node[0] == root.node[0]
                                          for r, _ in closures):
            import_nodes[root.node[0]] = program.reach([root.node])

    out: list[Verdicted] = []
    counts: dict[str, int] = defaultdict(int)
    handled: set[int] = set()

    def emit(r: Rule, key: str, message: str, e: c.Event) -> None:
        counts[r.id] += 1
        if counts[r.id] <= MAX_FINDINGS_PER_RULE:
            out.append(Verdicted(key, r, message, e.line, e.col, e))

    def where(key: str, e: c.Event) -> str:
        node = (key, e.scope)
        if node in phase_of:
            root, _ = phase_of[node]
            text = _PHASE_TEXT[root.phase]
            rkey, rscope = root.node
            if root.phase == "load":
                via = "" if rscope == e.scope else f", called from {rscope}"
                return f"{text} (in {e.scope}{via}): runs when {root.why}"
            if e.scope == c.MODULE and rkey == key and rscope == c.MODULE:
                return text if root.phase != "install" else f"{text} ({root.why})"
            inside = e.scope or "module level"
            if rkey != key:
                inside = f"{key}.{e.scope}" if e.scope else key
            return f"{text} (in {inside}, {root.why})"
        if e.scope == c.MAIN:
            return "under if __name__ == '__main__' (not run on import)"
        if e.scope == c.RELEASE:
            return "in a release command (not run on install)"
        return f"in {e.scope}()"

    def events_in(nodes: Iterable[Node], kinds: tuple[str, ...]) -> list[tuple[str, c.Event]]:
        found = [(n[0], e) for n in nodes for e in by_node.get(n, ()) if e.kind in kinds]
        return sorted(found, key=lambda x: (x[0], x[1].line, x[1].col))

    # -- combinations at run time (per root closure)
    for root, reached in closures:
        nets = [x for x in events_in(reached, (c.NETWORK,)) if id(x[1]) not in handled]
        extra = import_nodes.get(root.node[0], set()) if root.phase == "load" else set()
        # Packages: a secret read and a send in the same module (an SDK that reads its
        # config and, elsewhere, talks to its API is not exfiltration); host facts alone
        # (user agents) are not secrets there.
        sens = events_in(reached | extra, (c.SECRET,) if pkg else _SENSITIVE)
        if nets and sens:
            skey, sev = sens[0]
            for key, net in nets:
                if pkg:
                    # ... and in the same function, or read at module level: lxml's setup
                    # helpers read GITHUB_API_TOKEN in one function and download in others
                    same = [x for x in sens if x[0] == key
                            and x[1].scope in (net.scope, c.MODULE)]
                    if not same:
                        continue
                    skey, sev = same[0]
                loc = f"line {sev.line}" if skey == key else f"{skey}, line {sev.line}"
                emit(R.EXFILTRATION, key, f"{net.detail} {where(key, net)}; the same "
                     f"{root.phase}-time code {sev.detail} ({loc})", net)
                handled.add(id(net))
        runs = events_in(reached, (c.NATIVE, c.LIBC, c.PROCESS))
        if runs and not nets:
            for key, x in events_in(reached, (c.DROP,)):
                if id(x) not in handled:
                    emit(R.DROPPER, key, f"{x.detail} {where(key, x)}, with {runs[0][1].detail} "
                         f"(line {runs[0][1].line})", x)
                    handled.add(id(x))
        if nets:
            for kind, rule in ((c.ENDPOINT, R.EXFIL_ENDPOINT), (c.DROP, R.DROPPER)):
                for key, x in events_in(reached, (kind,)):
                    if id(x) not in handled:
                        emit(rule, key, f"{x.detail} {where(key, x)}, with {nets[0][1].detail} "
                             f"(line {nets[0][1].line})", x)
                        handled.add(id(x))
        for key, x in events_in(reached, (c.METADATA,)):
            if id(x) in handled:
                continue
            if nets:
                emit(R.METADATA_ACCESS, key, f"{x.detail} {where(key, x)}, with "
                     f"{nets[0][1].detail} (line {nets[0][1].line})", x)
                handled.add(id(x))
    # -- alone at run time: infostealing is malicious; endpoints and drops are suspicious
    for node, evs in by_node.items():
        if node not in phase_of:
            continue
        key, phase_here = node[0], phase_of[node][0].phase
        for x in evs:
            if id(x) in handled:
                continue
            if x.kind == c.STEALER:
                emit(R.INFOSTEALER, key, f"{x.detail} {where(key, x)}", x)
            elif x.kind == c.ENDPOINT and not pkg:
                emit(R.ENDPOINT, key, f"{x.detail} {where(key, x)}", x)
            elif x.kind == c.ENDPOINT:
                # a package naming an endpoint with no send at run time is a client
                # (tqdm.contrib.telegram); with one it is code-exfil-endpoint above
                continue
            elif x.kind == c.DROP and not (pkg and phase_here == "install"):
                emit(R.DROP_EXECUTABLE, key, f"{x.detail} {where(key, x)}", x)
            elif x.kind != c.DROP:
                continue
            handled.add(id(x))

    # -- combinations inside functions (nothing runs them on install, import or load)
    closure_cache: dict[Node, set[Node]] = {}
    many = sum(len(m.collector.functions) for m in program.modules.values()
               if m.collector) > MAX_FUNCTIONS_FOR_CLOSURES

    def closure(node: Node) -> set[Node]:
        if node not in closure_cache:
            closure_cache[node] = {node} if many or program.exhausted else program.reach([node])
        return closure_cache[node]

    for node, evs in by_node.items():
        if node in phase_of:
            continue
        key = node[0]
        for e in evs:
            if id(e) in handled:
                continue
            if e.kind in (c.NETWORK, c.STEALER, c.ENDPOINT, c.METADATA):
                cl = closure(node)
                nets = events_in(cl, (c.NETWORK,))
                if e.kind == c.NETWORK and not pkg:
                    sens = events_in(cl, _SENSITIVE)
                    if sens:
                        emit(R.POSSIBLE_EXFILTRATION, key, f"{e.detail} {where(key, e)}; the "
                             f"same code {sens[0][1].detail} (line {sens[0][1].line})", e)
                        handled.add(id(e))
                elif e.kind == c.STEALER:
                    if nets:
                        emit(R.INFOSTEALER, key, f"{e.detail} {where(key, e)}, with "
                             f"{nets[0][1].detail} (line {nets[0][1].line})", e)
                    elif not pkg:
                        emit(R.STEALER_TARGET, key, f"{e.detail} {where(key, e)}", e)
                    handled.add(id(e))
                elif e.kind == c.ENDPOINT and not pkg:
                    emit(R.EXFIL_ENDPOINT if nets else R.ENDPOINT, key,
                         f"{e.detail} {where(key, e)}", e)
                    handled.add(id(e))
                elif e.kind == c.METADATA and not pkg:
                    if nets:
                        near = sorted(nets, key=lambda x: (x[1].scope != e.scope,
                                                           x[1].line))[0][1]
                        emit(R.METADATA_ACCESS, key, f"{e.detail} {where(key, e)}, with "
                             f"{near.detail} (line {near.line})", e)
                    else:
                        emit(R.METADATA_ADDRESS, key, f"{e.detail} {where(key, e)}", e)
                    handled.add(id(e))

    # -- one event, one rule
    for node, evs in by_node.items():
        key = node[0]
        run = node in phase_of
        phase = phase_of[node][0].phase if run else None
        for e in evs:
            if id(e) in handled:
                continue
            if e.kind == c.NETWORK:
                if run:
                    emit(R.IMPORT_NETWORK, key, f"{e.detail} {where(key, e)}", e)
                elif not pkg:
                    emit(R.NETWORK, key, f"{e.detail} {where(key, e)}", e)
                continue
            if e.kind == c.METADATA:
                if run and not pkg:  # at run time with no network: the address alone
                    emit(R.METADATA_ADDRESS, key, f"{e.detail} {where(key, e)}", e)
                continue
            if e.kind == c.DROP and not run and not pkg:
                emit(R.DROP_EXECUTABLE, key, f"{e.detail} {where(key, e)}", e)
                continue
            if e.kind == c.DROP and pkg and phase == "install":
                continue  # build_ext copying its DLLs; a download makes it a dropper above
            if e.kind == c.PROCESS and pkg and phase == "install" and _build_step(e.detail):
                emit(R.BUILD_STEP, key, f"{e.detail} {where(key, e)}", e)
                continue
            if e.kind == c.PROCESS and pkg and phase == "import" \
                    and _first_word(e.detail) in IMPORT_PROBES:
                emit(R.BUILD_STEP, key, f"{e.detail} {where(key, e)}", e)
                continue
            if e.kind == c.DYN_EXEC and pkg and (phase in ("import", "install")
                                                 or "constant string" in e.detail):
                continue  # six.exec_ and compatibility shims; payloads are EXEC_PAYLOAD
            row = TABLE.get(e.kind)
            if row is None:
                continue
            chosen = (row[0] if run else row[1]) if not pkg else (row[2] if run else row[3])
            if pkg and phase == "startup" and e.kind == c.PROCESS:
                chosen = R.IMPORT_PROCESS  # a process at every interpreter start
            if chosen is not None:
                emit(chosen, key, f"{e.detail} {where(key, e)}", e)
    for rid, total in counts.items():
        if total > MAX_FINDINGS_PER_RULE:
            first = next(v for v in out if v.rule.id == rid)
            out.append(Verdicted(first.module, RULES[rid], f"{total - MAX_FINDINGS_PER_RULE} "
                                 f"more {rid} findings not listed", 1, 1))
    return out


def _first_word(detail: str) -> str:
    """The program of ``q(command)`` as the collector wrote it, without directory or .exe."""
    inner = detail.partition("(")[2].strip("'\" ")
    words = inner.replace("'", " ").replace('"', " ").split()
    if not words:
        return ""
    return words[0].replace("\\", "/").rsplit("/", 1)[-1].lower().removesuffix(".exe")


def _build_step(detail: str) -> bool:
    """``subprocess.check_call(['cmake', ...])`` -> the command's first word is a build
    tool. ``detail`` is ``q(command)`` as the collector wrote it."""
    inner = detail.partition("(")[2].strip("'\" ")
    words = inner.replace("'", " ").replace('"', " ").split()
    if not words:
        return False
    first = words[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
    if any(probe in inner.lower() for probe in ("/vswhere.exe", "/vcvarsall.")):
        return True  # MSVC discovery under "Program Files (x86)" (a path with spaces)
    if first == "{}":
        return True  # a command built from configuration (compiler, pkg-config variable)
    return first in BUILD_TOOLS or first.removesuffix(".exe") in BUILD_TOOLS
