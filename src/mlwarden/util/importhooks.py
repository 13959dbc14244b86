"""Post-import hooks: run a function on a module as soon as it is imported (or now, if it
already is), so the guard and provenance capture can patch modules whichever loads first."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

Hook = Callable[[ModuleType], None]
_hooks: dict[str, list[Hook]] = {}
_prefix_hooks: list[tuple[str, Hook]] = []
_busy = threading.local()
_installed = False


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any, name: str) -> None:
        self._inner = inner
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _run(self._name, module)

    def __getattr__(self, attr: str) -> Any:  # is_package, get_resource_reader, ...
        return getattr(self._inner, attr)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not _wanted(fullname):
            return None
        busy: set[str] = getattr(_busy, "names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        _busy.names = busy
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


def _wanted(name: str) -> bool:
    return name in _hooks or any(name.startswith(p) for p, _ in _prefix_hooks)


def _run(name: str, module: ModuleType) -> None:
    for fn in _hooks.get(name, ()):
        fn(module)
    for prefix, fn in _prefix_hooks:
        if name.startswith(prefix):
            fn(module)


def _ensure_finder() -> None:
    global _installed
    if not _installed:
        sys.meta_path.insert(0, _Finder())
        _installed = True


def when_imported(name: str, fn: Hook) -> None:
    """Call ``fn(module)`` now if ``name`` is imported, else right after its import."""
    _hooks.setdefault(name, []).append(fn)
    _ensure_finder()
    if name in sys.modules:
        fn(sys.modules[name])


def when_any_imported(prefix: str, fn: Hook) -> None:
    """Call ``fn`` for every loaded module under ``prefix`` and for each one loaded later."""
    _prefix_hooks.append((prefix, fn))
    _ensure_finder()
    for name, mod in list(sys.modules.items()):
        if name.startswith(prefix) and mod is not None:
            fn(mod)
