"""Model signatures in the OpenSSF model-signing format (interoperable with ``model_signing``),
and the verify-on-load check the guard calls."""

from mlwarden.signing.errors import SignatureFormatError, SigningError, SigningInputError
from mlwarden.signing.policy import Identity, SignaturePolicy, verify_model_signature
from mlwarden.signing.sign import SignResult, default_signature_path, sign_model
from mlwarden.signing.verify import VerificationResult, verify_signature

__all__ = [
    "Identity", "SignResult", "SignatureFormatError", "SignaturePolicy", "SigningError",
    "SigningInputError", "VerificationResult", "default_signature_path", "sign_model",
    "verify_model_signature", "verify_signature",
]
