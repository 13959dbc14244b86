"""Symbolic values of the pickle machine. Nothing here is ever imported or called."""

from __future__ import annotations

from typing import Any

# Uses of a global (bit set), as in mlwarden.scan.knowledge.Use.
REF, NEW, CALL, SETATTR, ITEMS = 1, 2, 4, 8, 16


class Global:
    """A name that find_class would import: ``module`` + attribute path ``name``."""

    __slots__ = ("call_args", "call_offset", "full", "how", "module", "name", "offset",
                 "resolved", "unresolved", "uses")

    def __init__(self, module: str, name: str, offset: int, how: str) -> None:
        self.module = module
        self.name = name
        self.full = f"{module}.{name}"  # read many times by the machine and classifier
        self.offset = offset
        self.how = how  # GLOBAL, STACK_GLOBAL, INST, EXT, getattr, ...
        self.uses = 0
        self.call_args: object = None
        self.call_offset: int | None = None
        self.resolved = 0  # resolver calls that the analysis followed statically
        self.unresolved = 0


class Call:
    """The result of invoking or reconstructing ``func`` (REDUCE, NEWOBJ, OBJ, INST)."""

    __slots__ = ("args", "func", "kind", "offset", "state")

    def __init__(self, func: object, args: object, kind: str, offset: int) -> None:
        self.func = func
        self.args = args
        self.kind = kind  # "call" or "new"
        self.offset = offset
        self.state: object = None  # BUILD state, when one was applied


class Attr:
    """``getattr(instance, name)``: a bound method or attribute of a reconstructed object."""

    __slots__ = ("name", "obj")

    def __init__(self, obj: object, name: str) -> None:
        self.obj = obj
        self.name = name


class Persistent:
    """The result of persistent_load(pid): the loader decides (torch storages)."""

    __slots__ = ("pid",)

    def __init__(self, pid: object) -> None:
        self.pid = pid


class Unknown:
    """A value the analysis cannot know (out-of-band buffers)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class SymDict:
    __slots__ = ("items",)

    def __init__(self, items: list[tuple[object, object]] | None = None) -> None:
        self.items: list[tuple[object, object]] = items if items is not None else []

    def get(self, key: str) -> object:
        for k, v in self.items:
            if k == key:
                return v
        return None


class SymSet:
    __slots__ = ("frozen", "items")

    def __init__(self, items: list[object], frozen: bool) -> None:
        self.items = items
        self.frozen = frozen


_PLAIN = (str, bytes, int, float, bool, complex, type(None))


def to_plain(value: object, depth: int = 0) -> Any:
    """A plain Python value for constant data, else None (bounded depth, no cycles)."""
    if isinstance(value, _PLAIN):
        return value
    if depth > 16:
        return None
    if isinstance(value, (tuple, list)):
        items = [to_plain(v, depth + 1) for v in value[:10_000]]
        if any(i is None and v is not None for i, v in zip(items, value[:10_000], strict=True)):
            return None
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, SymDict):
        out: dict[Any, Any] = {}
        for k, v in value.items[:10_000]:
            pk, pv = to_plain(k, depth + 1), to_plain(v, depth + 1)
            if (pk is None and k is not None) or (pv is None and v is not None):
                return None
            try:
                out[pk] = pv
            except TypeError:
                return None
        return out
    return None


def describe(value: object, budget: int = 80, depth: int = 0) -> str:
    """Short human description of a symbolic value, for messages."""
    if isinstance(value, Global):
        return value.full
    if isinstance(value, Call):
        return f"{describe(value.func, budget, depth + 1)}(...)"
    if isinstance(value, Attr):
        return f"<{describe(value.obj, budget, depth + 1)}>.{value.name}"
    if isinstance(value, Persistent):
        return "<persistent id>"
    if isinstance(value, Unknown):
        return f"<{value.why}>"
    if isinstance(value, (str, bytes, bytearray)):
        text = repr(value[:budget])
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        text = "<large int>"
    elif isinstance(value, tuple) and depth < 3:
        inner = ", ".join(describe(v, budget // 2, depth + 1) for v in value[:6])
        text = f"({inner}{', ...' if len(value) > 6 else ''}{',' if len(value) == 1 else ''})"
    elif isinstance(value, list) and depth < 3:
        inner = ", ".join(describe(v, budget // 2, depth + 1) for v in value[:6])
        text = f"[{inner}{', ...' if len(value) > 6 else ''}]"
    elif isinstance(value, SymDict):
        text = f"{{dict of {len(value.items)} items}}"
    elif isinstance(value, SymSet):
        text = f"{{set of {len(value.items)} items}}"
    elif isinstance(value, (tuple, list)):
        text = f"<{type(value).__name__} of {len(value)}>"
    else:
        text = repr(value)
    return text if len(text) <= budget else text[: budget - 3] + "..."
