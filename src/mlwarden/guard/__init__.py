"""Verify on load: ``mlwarden.guard.install(manifest=..., store=...)`` or ``mlwarden run``."""

from mlwarden.guard.core import (
    GuardState,
    GuardViolation,
    check_path,
    install,
    install_from_env,
    state,
)
from mlwarden.guard.env import BOOTSTRAP_DIR, run_environment

__all__ = ["BOOTSTRAP_DIR", "GuardState", "GuardViolation", "check_path", "install",
           "install_from_env", "run_environment", "state"]
