"""The environment ``mlwarden run -- CMD`` gives CMD: the bootstrap directory first on
PYTHONPATH (its sitecustomize installs the guard), MLWARDEN_GUARD_* settings, and the
hardened Hugging Face settings, offline against a view of the store or at a registry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlwarden.guard.core import HARDENED_ENV

BOOTSTRAP_DIR = Path(__file__).parent / "bootstrap"


SIGNING_VARS = ("MLWARDEN_GUARD_SIGNING_CONFIG", "MLWARDEN_GUARD_REQUIRE_SIGNATURE",
                "MLWARDEN_GUARD_SIGNING_KEYS")
PROVENANCE_VARS = ("MLWARDEN_GUARD_PROVENANCE_CONFIG", "MLWARDEN_GUARD_REQUIRE_PROVENANCE")


def run_environment(base: Mapping[str, str], manifest: Path, store: Path | None,
                    hf_cache: Path | None, endpoint: str | None,
                    strict: bool = False,
                    signing: Mapping[str, str] | None = None,
                    provenance: Mapping[str, str] | None = None) -> dict[str, str]:
    """``signing``: the MLWARDEN_GUARD_SIGNING_* variables from
    ``mlwarden.guard.signatures.signing_env``; ``provenance``: those of
    ``mlwarden.guard.provenance.provenance_env`` (none inherited: this run decides)."""
    env = {k: v for k, v in base.items() if k not in SIGNING_VARS + PROVENANCE_VARS}
    env.update(signing or {})
    env.update(provenance or {})
    old = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(BOOTSTRAP_DIR) + (os.pathsep + old if old else "")
    env.update(HARDENED_ENV)
    env["MLWARDEN_GUARD"] = "1"
    env["MLWARDEN_GUARD_MANIFEST"] = str(manifest.resolve())
    if store is not None:
        env["MLWARDEN_GUARD_STORE"] = str(store.resolve())
    if hf_cache is not None:
        env["MLWARDEN_GUARD_HF_CACHE"] = str(hf_cache.resolve())
        env["HF_HUB_CACHE"] = str(hf_cache.resolve())
    if strict:
        env["MLWARDEN_GUARD_STRICT"] = "1"
    if endpoint:
        env["MLWARDEN_GUARD_ENDPOINT"] = endpoint
        env["HF_ENDPOINT"] = endpoint.rstrip("/")
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
    else:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    return env
