"""Modules analysed together: one call graph across files.

Each ``Module`` is one parsed file with its collector (events, same-file edges, the
qualified names each scope calls and the modules it imports). A ``Program`` links them:
a call of ``pkg.sub.f`` from any scope reaches ``f`` in ``pkg/sub.py``; importing a module
runs its module-level code (and its packages' ``__init__``). Reachability from the entry
points (``behaviour/entry.py``) tells what runs at install, start-up, import or load."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from mlwarden.behaviour import collect as c
from mlwarden.behaviour.parse import ParseProblem, folded_identifiers, parse
from mlwarden.behaviour.resolve import Resolver

Node = tuple[str, str]  # (module key, scope key)
MAX_REACH = 2_000_000  # node visits per Program, over all reachability queries
MAX_RECURSION = 12_000


@dataclass
class Module:
    key: str  # dotted module name, or the display path when there is none
    path: str  # display path (archive member, file)
    tree: ast.Module | None = None
    resolver: Resolver | None = None
    collector: c.Collector | None = None
    problem: ParseProblem | None = None
    folded: list[tuple[int, int, str, str]] = field(default_factory=list)

    @property
    def events(self) -> list[c.Event]:
        return self.collector.events if self.collector else []


def analyse_module(data: bytes, path: str, module: str | None = None, package: bool = False,
                   limit: int | None = None) -> Module:
    """Parse and collect one file. ``module`` is its dotted name inside a program."""
    key = module or path
    tree = parse(data, path) if limit is None else parse(data, path, limit)
    if isinstance(tree, ParseProblem):
        return Module(key, path, problem=tree)
    limit = sys.getrecursionlimit()
    # Long elif chains and deep expressions nest the tree; 3.11 runs Python-to-Python calls
    # without growing the C stack, so a higher bound here is safe and still bounded.
    sys.setrecursionlimit(max(limit, MAX_RECURSION))
    try:
        resolver = Resolver(tree, module, package)
        collector = c.Collector(tree, resolver)
        collector.run()
    except RecursionError:
        return Module(key, path, problem=ParseProblem("syntax", "source nested too deeply to "
                                                       "analyse"))
    except Exception as exc:
        return Module(key, path, problem=ParseProblem(
            "syntax", f"internal error while analysing: {type(exc).__name__}: {exc}"))
    finally:
        sys.setrecursionlimit(limit)
    return Module(key, path, tree, resolver, collector, folded=folded_identifiers(data))


class Program:
    def __init__(self, modules: Iterable[Module] = (), callbacks: bool = True) -> None:
        """``callbacks``: follow functions handed to calls that may not call them (the
        remote-code allowlist stance); packages follow only calls known to call them."""
        self.callbacks = callbacks
        self.modules: dict[str, Module] = {}
        self._edges: dict[str, dict[str, set[str]]] = {}
        self._budget = MAX_REACH
        self._succ: dict[Node, set[Node]] = {}
        for m in modules:
            self.add(m)

    def add(self, m: Module) -> None:
        self.modules[m.key] = m
        if m.collector is not None:
            self._edges[m.key] = m.collector.edges(self.callbacks)

    def _owner(self, dotted: str) -> tuple[str, str] | None:
        """(module key, rest) for the longest module prefix of ``dotted`` in the program."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            if mod in self.modules:
                return mod, ".".join(parts[i:])
        return None

    def successors(self, node: Node) -> set[Node]:
        found = self._succ.get(node)
        if found is None:
            found = self._succ[node] = self._successors(node)
        return found

    def _successors(self, node: Node) -> set[Node]:
        key, scope = node
        m = self.modules.get(key)
        if m is None or m.collector is None:
            return set()
        out = {(key, t) for t in self._edges.get(key, {}).get(scope, ())}
        col = m.collector
        for q in col.calls.get(scope, ()):
            owner = self._owner(q.rstrip("()"))
            if owner is None or owner[0] == key:
                continue
            mod, rest = owner
            out.add((mod, c.MODULE))
            target = self.modules[mod].collector
            if rest and target is not None:
                for cand in (rest, f"{rest}.__init__", f"{rest}.__new__", f"{rest}.__call__",
                             f"{rest}.__post_init__"):
                    if cand in target.functions:
                        out.add((mod, cand))
        for imported in col.imports.get(scope, ()):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in self.modules and mod != key:
                    out.add((mod, c.MODULE))
        return out

    def reach(self, roots: Iterable[Node]) -> set[Node]:
        seen: set[Node] = set()
        stack = [r for r in roots]
        seen.update(stack)
        while stack and self._budget > 0:
            self._budget -= 1
            for t in self.successors(stack.pop()):
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return seen

    def reach_kinds(self, roots: Iterable[Node], kinds_of: dict[Node, frozenset[str]]
                    ) -> dict[Node, frozenset[str]]:
        """For every node reachable from ``roots``: the event kinds reachable from it
        (Tarjan's strongly connected components, iterative; linear in the graph)."""
        index: dict[Node, int] = {}
        low: dict[Node, int] = {}
        on: set[Node] = set()
        stack: list[Node] = []
        out: dict[Node, frozenset[str]] = {}
        for root in roots:
            if root in index:
                continue
            work: list[tuple[Node, list[Node]]] = [(root, sorted(self.successors(root)))]
            index[root] = low[root] = len(index)
            stack.append(root)
            on.add(root)
            while work:
                v, todo = work[-1]
                if todo:
                    w = todo.pop()
                    if w not in index:
                        index[w] = low[w] = len(index)
                        stack.append(w)
                        on.add(w)
                        work.append((w, sorted(self.successors(w))))
                    elif w in on:
                        low[v] = min(low[v], index[w])
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp: list[Node] = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    kinds: set[str] = set()
                    for w in comp:
                        kinds |= kinds_of.get(w, frozenset())
                        for x in self.successors(w):
                            if x in out:
                                kinds |= out[x]
                    frozen = frozenset(kinds)
                    for w in comp:
                        out[w] = frozen
        return out

    @property
    def exhausted(self) -> bool:
        return self._budget <= 0
