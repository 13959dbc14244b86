"""The package layout is the architecture: no import cycles between mlwarden's packages.

Every ``import`` counts, including those inside functions: a lazy import still ties the two
packages together. ``catalog`` and ``cli`` sit on top and may import anything."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TOP = {"mlwarden.catalog", "mlwarden.cli", "mlwarden.__main__"}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for f in (SRC / "mlwarden").rglob("*.py"):
        module = ".".join(f.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        here = _package(module)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t.startswith("mlwarden.") and _package(t) != here:
                    edges.setdefault(here, set()).add(_package(t))
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_packages() -> None:
    assert cycles(package_graph()) == []


def test_only_the_top_imports_the_catalogue() -> None:
    users = {p for p, ts in package_graph().items() if "mlwarden.catalog" in ts}
    assert users <= TOP


def test_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
