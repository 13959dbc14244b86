"""Model signatures in the OpenSSF model-signing format (interoperable with ``model_signing``),
and the verify-on-load check the guard calls.

The names below load on first use: a process that only needs ``mlwarden.signing.statement``
(``mlwarden attest`` signs after every training run) does not pay for model_signing-facing
code and X.509 parsing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwarden.signing.errors import SignatureFormatError, SigningError, SigningInputError

if TYPE_CHECKING:
    from mlwarden.signing.policy import Identity, SignaturePolicy, verify_model_signature
    from mlwarden.signing.sign import SignResult, default_signature_path, sign_model
    from mlwarden.signing.verify import VerificationResult, verify_signature

_LAZY = {
    "Identity": "policy", "SignaturePolicy": "policy", "verify_model_signature": "policy",
    "SignResult": "sign", "default_signature_path": "sign", "sign_model": "sign",
    "VerificationResult": "verify", "verify_signature": "verify",
}

__all__ = [
    "Identity", "SignResult", "SignatureFormatError", "SignaturePolicy", "SigningError",
    "SigningInputError", "VerificationResult", "default_signature_path", "sign_model",
    "verify_model_signature", "verify_signature",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwarden.signing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"mlwarden.signing.{module}"), name)
    globals()[name] = value
    return value
