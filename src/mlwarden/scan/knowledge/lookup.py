"""One answer per ``module.qualname``: dangerous, allowed (for which uses), or unknown."""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import NamedTuple

from mlwarden.scan.knowledge import allowlist, dangerous
from mlwarden.scan.knowledge.allowlist import Safe
from mlwarden.scan.knowledge.dangerous import Danger


class Use(enum.IntFlag):
    REF = allowlist.R  # referenced as a value only
    NEW = allowlist.N  # instance reconstructed without running __init__
    CALL = allowlist.C  # invoked with arguments


# A NamedTuple, not a dataclass: as immutable, and cheaper to build at import.
class Knowledge(NamedTuple):
    name: str
    danger: Danger | None
    safe: Safe | None

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
    safe = None if danger is not None else _safe(module, qualname)
    return Knowledge(name, danger, safe)


def _safe(module: str, qualname: str) -> Safe | None:
    hit = allowlist.NAMES.get(f"{module}.{qualname}")
    if hit is not None or "." in qualname or qualname.startswith("__"):
        return hit
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        hit = allowlist.PREFIXES.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None
