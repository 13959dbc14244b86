"""Name scopes with flow-ordered bindings (same scope) and stable bindings (enclosing scopes).

Within one scope, statements are visited in source order and the latest binding wins.
Function bodies run later than the code around them, so a lookup from a function into an
enclosing scope only trusts a name that the enclosing scope binds to a single value.
"""

from __future__ import annotations

from mlwarden.lint.values import UNKNOWN, Ref, Value

# Common import aliases, used only when the name is never bound in the file (a notebook
# fragment or a snippet that relies on an earlier ``import numpy as np``).
_CONVENTIONAL = {"np": "numpy", "pd": "pandas", "tf": "tensorflow"}
_CONFLICT = object()


class Scope:
    def __init__(self, kind: str, parent: Scope | None = None) -> None:
        # "module", "class", "function", or "comp" (a comprehension: runs immediately)
        self.kind = kind
        self.parent = parent
        self.bindings: dict[str, Value] = {}
        self._history: dict[str, object] = {}

    def bind(self, name: str, value: Value) -> None:
        self.bindings[name] = value
        prev = self._history.get(name)
        self._history[name] = value if prev is None or prev == value else _CONFLICT

    def mark_conflicting(self, name: str) -> None:
        self._history[name] = _CONFLICT

    def module(self) -> Scope:
        s = self
        while s.parent is not None:
            s = s.parent
        return s

    def stable(self, name: str) -> Value | None:
        """The value of ``name`` as seen from code that runs later (None: not bound here)."""
        h = self._history.get(name)
        if h is None:
            return None
        return h if isinstance(h, Value) else UNKNOWN

    def lookup(self, name: str) -> Value:
        if name in self.bindings:
            return self.bindings[name]
        # Class bodies and comprehensions run on the spot: they see the enclosing scope's
        # current bindings. Functions run later: they see only stable bindings, and never
        # the bindings of a class body around them.
        immediate = self.kind in ("class", "comp")
        skip_class = self.kind == "function"
        s = self.parent
        while s is not None:
            if immediate and name in s.bindings:
                return s.bindings[name]
            if not (skip_class and s.kind == "class"):
                v = s.stable(name)
                if v is not None:
                    return v
            if s.kind == "function":
                skip_class = True
            immediate = immediate and s.kind in ("class", "comp")
            s = s.parent
        return Ref(_CONVENTIONAL.get(name, name))
