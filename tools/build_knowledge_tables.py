#!/usr/bin/env python
"""Build the library tables the scanner ships, from the pinned libraries installed here.

    python tools/build_knowledge_tables.py            # writes the table
    python tools/build_knowledge_tables.py --check    # exit 1 when the checked-in table differs

Output: src/mlwarden/scan/knowledge/data/libraries.tsv.gz (sections of tab-separated lines,
see knowledge/libraries.py). This tool imports the libraries
(it is a developer tool; the scanner never imports them) and records, by identity:

- ``classes``: every class defined in a library whose plain reconstruction is pure, judged
  by the same source analysis the scanner runs (knowledge.sources.classify), with the uses
  it allows (slot-state BUILD, item opcodes). The scan then needs no installed library.
- ``functions``: functions defined in a library (referencing one only imports its module).
- ``aliases``: ``module.attr`` spellings of objects defined elsewhere, found by walking
  every module's namespace (and compatibility modules that serve names through a module
  ``__getattr__``, such as numpy.core in numpy 2): a library path that is really
  ``subprocess.check_output`` is classified as that. Recorded when the target is in the
  knowledge base or in these tables.
- ``legacy``: functions a library keeps so that old pickles still load (numpy < 1.0's
  ``numpy.core._internal._reconstruct``, numpy < 1.17's ``numpy.random.__RandomState_ctor``,
  Cython ``__pyx_unpickle_*``...), recognised by the naming conventions of pickle entry
  points and admitted only when the effects analysis finds their body pure; the arguments
  they call or instantiate are recorded as the helper's roles.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import pkgutil
import re
import sys
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mlwarden" / "scan" / "knowledge" / "data" / "libraries.tsv.gz"
sys.path.insert(0, str(ROOT / "src"))

LIBRARIES = ("numpy", "scipy", "sklearn", "torch", "transformers", "tokenizers", "joblib",
             "pandas", "safetensors", "accelerate")
_SKIP = re.compile(r"(^|\.)(tests?|testing|_testing|conftest|setup|__main__|_vendor|vendored|"
                   r"benchmarks?|examples?|_pytest|_dynamo|_inductor|_export|onnx|"
                   r"distributed|cuda|mps|xpu|_functorch|_lazy|testing_utils|commands|"
                   r"cli|bin|modular_\w+|convert_\w+)(\.|$)")
# Compiled modules whose classes are plain value types, vouched for as a whole because no
# source can be read: each class *defined* there is recorded by exact name (callable too:
# their pickles call them with their constructor arguments).
VETTED_COMPILED = {
    "pandas._libs.tslibs.offsets": "pandas date offsets",
    "sklearn.linear_model._sgd_fast": "scikit-learn SGD losses",
    "sklearn._loss._loss": "scikit-learn losses",
    "sklearn.tree._tree": "scikit-learn tree structure",
    "sklearn.neighbors._kd_tree": "scikit-learn KD tree",
    "sklearn.neighbors._ball_tree": "scikit-learn ball tree",
    "sklearn.metrics._dist_metrics": "scikit-learn distance metrics",
    "sklearn.utils._random": "scikit-learn random helpers",
    "sklearn.utils._seq_dataset": "scikit-learn datasets",
    "sklearn.utils._weight_vector": "scikit-learn weight vectors",
    "sklearn.neighbors._quad_tree": "scikit-learn quad tree",
    "sklearn.ensemble._hist_gradient_boosting.common": "scikit-learn HGB structures",
    "scipy.spatial._ckdtree": "scipy KD tree",
    "scipy.interpolate._ppoly": "scipy interpolation",
}
_LEGACY_NAME = re.compile(r"^(_reconstruct\w*|__\w+_ctor|_?unpickle\w*|__pyx_unpickle_\w+|"
                          r"_rebuild\w*|\w*_reconstructor|_ufunc_reconstruct|"
                          r"_new_\w+|__newobj\w*)$")


def _modules(lib: str) -> list[types.ModuleType]:
    try:
        top = importlib.import_module(lib)
    except Exception as exc:  # a library missing here is simply not in the table
        print(f"  {lib}: not importable ({type(exc).__name__}: {exc})")
        return []
    out = [top]
    path = getattr(top, "__path__", None)
    if path is None:
        return out
    for info in pkgutil.walk_packages(path, lib + ".", onerror=lambda _n: None):
        if _SKIP.search(info.name):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(importlib.import_module(info.name))
        except BaseException:  # optional dependencies, platform-specific modules
            continue
    return out


def _canonical(obj: object) -> str | None:
    if isinstance(obj, types.ModuleType):
        return None
    import numpy

    if isinstance(obj, numpy.ufunc):  # ufuncs pickle by name in the numpy namespace
        name = getattr(obj, "__name__", "")
        return f"numpy.{name}" if getattr(numpy, name, None) is obj else None
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if not (isinstance(mod, str) and isinstance(qual, str)) or "<" in qual:
        return None
    try:  # the canonical spelling must reach the same object (identity)
        target: object = importlib.import_module(mod)
        for part in qual.split("."):
            target = getattr(target, part)
    except Exception:
        return None
    return f"{mod}.{qual}" if target is obj else None


def _is_ufunc(obj: object) -> bool:
    import numpy

    return isinstance(obj, numpy.ufunc)


def _names(module: types.ModuleType) -> dict[str, object]:
    names = dict(vars(module))
    if "__getattr__" in names and callable(names["__getattr__"]):
        # Compatibility shims (numpy.core -> numpy._core) serve names dynamically: try
        # the names of the module they stand for.
        target = module.__name__.replace(".core", "._core", 1)
        if target != module.__name__:
            try:
                real = importlib.import_module(target)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for n in dir(real):
                        try:
                            names.setdefault(n, getattr(module, n))
                        except Exception:
                            continue
            except Exception:
                pass
    return names


def build() -> dict[str, object]:
    from mlwarden.scan.knowledge import sources
    from mlwarden.scan.knowledge.lookup import lookup

    classes: dict[str, int] = {}
    functions: set[str] = set()
    aliases: dict[str, str] = {}
    legacy: dict[str, list[list[int]]] = {}
    versions: dict[str, str] = {}
    seen_classes: set[str] = set()
    for lib in LIBRARIES:
        mods = _modules(lib)
        if not mods:
            continue
        versions[lib] = str(getattr(mods[0], "__version__", "?"))
        print(f"  {lib} {versions[lib]}: {len(mods)} modules", flush=True)
        for module in mods:
            mname = module.__name__
            for attr, obj in _names(module).items():
                if attr.startswith("__") and not _LEGACY_NAME.match(attr):
                    continue
                canon = _canonical(obj)
                if canon is None:
                    continue
                here = f"{mname}.{attr}"
                if canon != here:
                    aliases[here] = canon
                if not canon.startswith(lib + ".") and canon.split(".")[0] != lib:
                    continue
                cmod, _, cqual = canon.rpartition(".")
                if isinstance(obj, type):
                    if canon in seen_classes:
                        continue
                    seen_classes.add(canon)
                    if cmod in VETTED_COMPILED:
                        classes[canon] = 1 | 2 | 4 | 8 | 16
                        continue
                    found = sources.classify(cmod, cqual)
                    if found is not None and found.kind == "class" and found.plain:
                        classes[canon] = 1 | 2 | (8 if found.setattr_ok else 0) | (
                            16 if found.items_ok else 0)
                elif _is_ufunc(obj):
                    functions.add(canon)
                elif isinstance(obj, types.BuiltinFunctionType) and "." not in cqual \
                        and cqual.startswith("__pyx_unpickle_"):
                    # Cython's generated unpickler: X.__new__(type) then __setstate__.
                    legacy[canon] = [[], [0]]
                elif isinstance(obj, types.FunctionType) and "." not in cqual:
                    functions.add(canon)
                    if _LEGACY_NAME.match(cqual):
                        roles = sources.roles_of(cmod, cqual)
                        if roles is not None:
                            legacy[canon] = [list(roles[0]), list(roles[1])]
    # Keep only aliases whose target the scanner knows something about.
    known = set(classes) | functions | set(legacy)

    def relevant(target: str) -> bool:
        mod, _, qual = target.rpartition(".")
        k = lookup(mod, qual)
        return target in known or k.danger is not None or k.safe is not None

    aliases = {k: v for k, v in sorted(aliases.items()) if relevant(v)}
    return {"versions": versions, "classes": dict(sorted(classes.items())),
            "functions": sorted(functions), "aliases": aliases,
            "legacy": dict(sorted(legacy.items()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    import os

    os.environ["MLWARDEN_SOURCE_PATH"] = ""
    os.environ["MLWARDEN_TABLES"] = "off"  # judge from sources, not from an older table
    from mlwarden.scan.knowledge import libraries

    table = build()
    table["functions"] = set(table["functions"])
    text = libraries.render(table)
    if args.check:
        current = gzip.decompress(OUT.read_bytes()).decode() if OUT.exists() else ""
        same = libraries.parse(current) == libraries.parse(text)
        print("table is current" if same else "table differs from the libraries installed")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(table['classes'])} classes, "
          f"{len(table['functions'])} functions, {len(table['aliases'])} aliases, "
          f"{len(table['legacy'])} legacy entry points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
