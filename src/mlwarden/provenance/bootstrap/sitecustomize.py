"""mlwarden attest bootstrap.

``mlwarden attest`` puts this directory first on PYTHONPATH, so every Python process of the
training run (and its children) records what it reads and writes into the directory named
by MLWARDEN_ATTEST_LOG (mlwarden.provenance.probe). If recording cannot start the process
stops (exit 70): an incomplete record would be a silently wrong one. Any other
sitecustomize on sys.path (e.g. the load guard's, under ``mlwarden run``) still runs.
"""

import os
import sys


def _chain() -> None:
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    entries = [os.path.abspath(e) if e else "" for e in sys.path]
    # Only what comes after this directory: an earlier sitecustomize (the guard's) has
    # already run and chained to this one.
    start = entries.index(here) + 1 if here in entries else 0
    for entry in entries[start:]:
        if not entry or entry == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_mlwarden_attest_chained",
                                                          candidate)
            if spec is not None and spec.loader is not None:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


if not getattr(sys, "_mlwarden_attest_bootstrapped", False):
    # Once per process, even when another bootstrap's chain executes this file again.
    sys._mlwarden_attest_bootstrapped = True  # type: ignore[attr-defined]
    if os.environ.get("MLWARDEN_ATTEST_LOG"):
        try:
            from mlwarden.provenance.probe import install_from_env

            install_from_env()
        except BaseException as exc:
            sys.stderr.write(f"mlwarden attest: cannot record this process: {exc}\n")
            sys.stderr.flush()
            os._exit(70)
    _chain()
