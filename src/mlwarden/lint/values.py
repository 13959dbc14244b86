"""Abstract values for the lint analysis: what a name or expression is known to hold.

The analysis is deliberately small: import aliases, constants, dict literals (for
``**kwargs``), ``functools.partial`` objects and "this is a local path". Anything else is
``UNKNOWN``, and rules give unknown values the benefit of the doubt.
"""

from __future__ import annotations

from dataclasses import dataclass

# Containers larger than this are not tracked (kwargs dicts are small; generated tables are
# not interesting and would make every update quadratic).
MAX_TRACKED_ITEMS = 256


@dataclass(frozen=True)
class Value:
    """Base class; the plain instance ``UNKNOWN`` means "could be anything"."""


UNKNOWN = Value()


@dataclass(frozen=True)
class Ref(Value):
    """A module or attribute reached through imports, e.g. ``torch.load`` (canonical name)."""

    qualname: str

    @property
    def root(self) -> str:
        return self.qualname.split(".", 1)[0]

    @property
    def last(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Const(Value):
    value: object


@dataclass(frozen=True)
class DictVal(Value):
    """A dict with known string keys. ``complete`` is False once unknown entries merged in."""

    items: tuple[tuple[str, Value], ...]
    complete: bool = True

    def get(self, key: str) -> Value | None:
        for k, v in self.items:
            if k == key:
                return v
        return None

    def with_item(self, key: str, value: Value) -> DictVal:
        return self.merged(DictVal(((key, value),)))

    def without(self, key: str) -> DictVal:
        return DictVal(tuple((k, v) for k, v in self.items if k != key), self.complete)

    def merged(self, other: Value) -> DictVal:
        """``{**self, **other}``; linear time, so huge generated dict literals stay cheap."""
        if not isinstance(other, DictVal):
            return DictVal(self.items, False)
        out = dict(self.items)
        out.update(other.items)
        return DictVal.of(out, self.complete and other.complete)

    @staticmethod
    def of(items: dict[str, Value], complete: bool = True) -> DictVal:
        if len(items) > MAX_TRACKED_ITEMS:
            return DictVal((), False)
        return DictVal(tuple(items.items()), complete)


@dataclass(frozen=True)
class PartialVal(Value):
    """``functools.partial(func, *args, **keywords)``."""

    func: Value
    args: tuple[Value, ...]
    keywords: DictVal


@dataclass(frozen=True)
class LocalPath(Value):
    """A local filesystem path: ``Path(...)``, ``os.path.*``, a temp dir, a download's result."""


@dataclass(frozen=True)
class Instance(Value):
    """The result of calling something we could name (a model object, an API client...)."""

    qualname: str


@dataclass(frozen=True)
class TupleVal(Value):
    items: tuple[Value, ...]


def truthy(v: Value) -> bool | None:
    """Python truthiness of a known constant; None when unknown."""
    if isinstance(v, Const):
        return bool(v.value)
    return None
