"""Training provenance: ``mlwarden attest``, the Python ``Recorder`` and transformers
callback, SLSA Provenance v1 statements signed as DSSE, and their verification.

Kept import-light: the attest bootstrap imports ``mlwarden.provenance.probe`` in every
process of a training run, which loads this package first.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Recorder": "mlwarden.provenance.recorder",
    "ProvenanceCallback": "mlwarden.provenance.hf",
    "verify_provenance": "mlwarden.provenance.verify",
    "ProvenanceVerification": "mlwarden.provenance.verify",
    "ProvenanceRequirement": "mlwarden.provenance.policy",
    "attest": "mlwarden.provenance.attest",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
