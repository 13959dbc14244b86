"""mlwarden load guard bootstrap.

``mlwarden run`` puts this directory first on PYTHONPATH, so every Python process it
starts (and their children) imports this module at start-up and installs the guard from
MLWARDEN_GUARD_* variables. If the guard cannot be installed the process stops (exit 70):
running unguarded would be silently unsafe. Any other sitecustomize on sys.path still runs.
"""

import os
import sys


def _chain() -> None:
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_mlwarden_chained_sitecustomize",
                                                          candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


if os.environ.get("MLWARDEN_GUARD") == "1":
    try:
        from mlwarden.guard import install_from_env

        install_from_env()
    except BaseException as exc:
        sys.stderr.write(f"mlwarden guard: cannot install the load guard: {exc}\n")
        sys.stderr.flush()
        os._exit(70)
_chain()
