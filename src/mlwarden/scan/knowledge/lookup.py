"""One answer per ``module.qualname``: dangerous, allowed (for which uses), or unknown."""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import NamedTuple

from mlwarden.scan.knowledge import allowlist, dangerous, policy
from mlwarden.scan.knowledge.allowlist import Safe
from mlwarden.scan.knowledge.dangerous import Danger


class Use(enum.IntFlag):
    REF = allowlist.R  # referenced as a value only
    NEW = allowlist.N  # instance reconstructed without running __init__
    CALL = allowlist.C  # invoked with arguments
    SETATTR = allowlist.S  # BUILD with slot state: setattr on the instance
    ITEMS = allowlist.IT  # SETITEM(S)/APPEND(S)/ADDITEMS applied to an instance


# A NamedTuple, not a dataclass: as immutable, and cheaper to build at import.
class Knowledge(NamedTuple):
    name: str
    danger: Danger | None
    safe: Safe | None
    note: str = ""  # why an unknown name was not vouched for (source analysis)

    def allows(self, uses: int) -> bool:
        """True when every use in ``uses`` is one the allowlist vouches for."""
        # Being referenced is implied by every other use.
        return self.safe is not None and (uses & ~(self.safe.uses | allowlist.R)) == 0


# Aliases: names that other modules re-export under a canonical module.
_MODULE_ALIASES = {
    "cloudpickle.cloudpickle_fast": "cloudpickle.cloudpickle",
    "__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins",
    "numpy.core._multiarray_umath": "numpy.core.multiarray",
    "numpy._core._multiarray_umath": "numpy._core.multiarray",
    "posixpath": "os.path", "ntpath": "os.path",
}
_DUNDER_OK = {"__newobj__", "__newobj_ex__", "__randomstate_ctor", "__bit_generator_ctor",
              "__generator_ctor", "__pyx_unpickle_SeedSequence", "__main__"}
_SUSPECT_ATTRS = {"__globals__", "__builtins__", "__subclasses__", "__code__", "__class__",
                  "__bases__", "__mro__", "__dict__", "__getattribute__", "__reduce__",
                  "__reduce_ex__", "__init__", "__call__", "__loader__", "__spec__",
                  "__import__", "__self__", "__func__", "__closure__", "f_globals", "gi_frame"}
_INTROSPECTION = Danger("import", "dotted path reaches interpreter internals through dunder "
                        "attributes", "scanner-landscape.md: dotted attribute paths")


@lru_cache(maxsize=4096)
def lookup(module: str, qualname: str) -> Knowledge:
    return _lookup(module, qualname, True)


def _lookup(module: str, qualname: str, follow: bool) -> Knowledge:
    """Classify ``module.qualname`` as find_class would resolve it.

    Dotted qualnames are attribute paths (protocol >= 4): ``('logging', 'os.system')`` is
    ``os.system`` reached through ``logging.os``. Every suffix of the path is therefore also
    checked against the dangerous base, and dunder steps (``__globals__``) are dangerous.
    """
    module = _MODULE_ALIASES.get(module, module)
    name = f"{module}.{qualname}"
    # An exact allowlist entry vouches for that one object inside a dangerous module
    # (functools.partial); an exact dangerous entry still wins.
    if name in allowlist.NAMES and name not in dangerous.NAMES:
        return Knowledge(name, None, allowlist.NAMES[name])
    danger = _static_danger(module, qualname)
    if danger is not None:
        return Knowledge(name, danger, None)
    from mlwarden.scan.knowledge import libraries

    canon = libraries.alias(name) if follow else None
    if canon is None and follow and _table_safe(name, qualname) is None:
        canon = _canonical(module, qualname)
    if canon is not None and canon != name:
        # A re-export (``sklearn.x.check_output`` is ``subprocess.check_output``): what
        # the name really is decides, under the name the pickle used. One hop: the
        # canonical name is where the object is defined.
        cmod, _, cqual = _split_canonical(canon)
        k = _lookup(cmod, cqual, False)
        return Knowledge(name, k.danger, k.safe, k.note)
    safe, note = _safe(module, qualname)
    return Knowledge(name, None, safe, note)


def exists(module: str, qualname: str) -> bool:
    """Whether some known library defines ``module.qualname`` (knowledge base, tables, or
    the installed sources). False means find_class would raise here."""
    k = lookup(module, qualname)
    if k.danger is not None or k.safe is not None:
        return True
    from mlwarden.scan.knowledge import libraries, sources

    name = f"{_MODULE_ALIASES.get(module, module)}.{qualname}"
    if libraries.alias(name) or sources.canonical(module, qualname) is not None:
        return True
    # Only a module whose source we read, and which does not define the name, is proof.
    return not sources.is_module(module) or sources.has_module_getattr(module)


@lru_cache(maxsize=1024)
def undefined(module: str, qualname: str) -> str | None:
    """Why find_class raises on ``module.qualname`` with the installed libraries, when
    their source proves the name does not exist (``sources.undefined``); None otherwise
    (defined, not provable, library not installed, or source analysis switched off)."""
    module = _MODULE_ALIASES.get(module, module)
    if module in _STDLIB_SKIP or module.startswith("__torch__") \
            or not policy.current().installed_sources:
        return None
    if lookup(module, qualname).safe is not None:
        return None
    from mlwarden.scan.knowledge import libraries, sources

    if libraries.alias(f"{module}.{qualname}") is not None \
            or sources.canonical(module, qualname) is not None:
        return None
    return sources.undefined(module, qualname)


def _static_danger(module: str, qualname: str) -> Danger | None:
    """The dangerous base's answer for the name as written (dotted paths included)."""
    danger = dangerous.find(module, qualname)
    if danger is None and (module.endswith(".__main__") or module == "__main__.__main__"):
        danger = dangerous.SIDE_EFFECT_IMPORT
    if danger is None and "." in qualname:
        parts = qualname.split(".")
        if any(p in _SUSPECT_ATTRS for p in parts):
            danger = _INTROSPECTION
        else:
            # ``logging`` + ``os.system``: try ``os.system``, then deeper suffixes.
            for i in range(len(parts) - 1):
                sub_mod = _MODULE_ALIASES.get(parts[i], parts[i])
                danger = dangerous.find(sub_mod, ".".join(parts[i + 1 :]))
                if danger is not None:
                    break
    return danger


@lru_cache(maxsize=4096)
def danger_of(module: str, qualname: str) -> Danger | None:
    """Dangerous as written or as what it really is (re-exports followed); never runs the
    source analysis of classes (that would recurse through this question)."""
    module = _MODULE_ALIASES.get(module, module)
    danger = _static_danger(module, qualname)
    if danger is None:
        from mlwarden.scan.knowledge import libraries

        canon = libraries.alias(f"{module}.{qualname}") or _canonical(module, qualname)
        if canon is not None and canon != f"{module}.{qualname}":
            cmod, _, cqual = _split_canonical(canon)
            danger = _static_danger(cmod, cqual)
    return danger


def _split_canonical(canon: str) -> tuple[str, str, str]:
    from mlwarden.scan.knowledge import sources

    parts = canon.split(".")
    for i in range(len(parts) - 1, 0, -1):  # the longest prefix that is a module
        if sources.is_module(".".join(parts[:i])):
            return ".".join(parts[:i]), ".", ".".join(parts[i:])
    mod, _, qual = canon.rpartition(".")
    return mod, ".", qual


def _canonical(module: str, qualname: str) -> str | None:
    """Where ``module.qualname`` is defined, from the installed sources (None: unknown)."""
    if module in _STDLIB_SKIP or not policy.current().installed_sources:
        return None
    from mlwarden.scan.knowledge import sources

    return sources.canonical(module, qualname)


# Modules the knowledge base describes completely: no source lookup for their names.
_STDLIB_SKIP = frozenset({"builtins", "copyreg", "collections", "_codecs", "codecs",
                          "__torch__"})


def _safe(module: str, qualname: str) -> tuple[Safe | None, str]:
    name = f"{module}.{qualname}"
    hit = allowlist.NAMES.get(name)
    if hit is not None:
        return hit, ""
    table = _table_safe(name, qualname)
    if table is not None:
        return table, ""
    if module == "__torch__" or module.startswith("__torch__."):
        return allowlist.PREFIXES["__torch__"], ""
    pol = policy.current()
    if name in pol.allow_classes:
        return Safe(allowlist.RN, "admitted by name in the scan policy"), ""
    if qualname.startswith("__") or not pol.installed_sources:
        return _legacy_prefix(module, qualname), ""
    from mlwarden.scan.knowledge import sources

    found = sources.classify(module, qualname)
    if found is None:
        return _legacy_prefix(module, qualname), "source not installed"
    if found.kind == "class" and found.plain:
        uses = allowlist.R | allowlist.N | (allowlist.S if found.setattr_ok else 0) | (
            allowlist.IT if found.items_ok else 0)
        return Safe(uses, f"installed class: {found.reason}"), ""
    if found.kind == "function" and "." not in qualname:
        return Safe(allowlist.R, "installed library function (referenced, not called)"), ""
    return None, found.reason


def _table_safe(name: str, qualname: str) -> Safe | None:
    """What the generated library tables vouch for under this exact name."""
    from mlwarden.scan.knowledge import libraries

    roles = libraries.legacy(name)
    if roles is not None:
        return Safe(allowlist.R | allowlist.C, "pickle entry point the library keeps for "
                    "old pickles (pure body; table)", roles[0], roles[1])
    uses = libraries.class_uses(name)
    if uses is not None:
        return Safe(uses, "library class: plain reconstruction is pure (table)")
    if "." not in qualname and libraries.is_function(name):
        return Safe(allowlist.R, "library function (referenced, not called; table)")
    return None


def _legacy_prefix(module: str, qualname: str) -> Safe | None:
    """Only ``__torch__`` (see allowlist.PREFIXES)."""
    if module == "__torch__" or module.startswith("__torch__."):
        return allowlist.PREFIXES["__torch__"]
    return None
