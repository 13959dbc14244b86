"""Signed ML-BOMs: the BOM file is signed as a one-file model in the OpenSSF model-signing
format, so ``model_signing verify`` checks it unchanged, and so does
``mlwarden verify-signature BOM --signature BOM.sig``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mlwarden.sbom.errors import SbomError, SbomInputError
from mlwarden.signing import (
    Identity,
    SignaturePolicy,
    SigningError,
    SigningInputError,
    VerificationResult,
    sign_model,
    verify_model_signature,
)
from mlwarden.signing.statement import Trust


def default_bom_signature(bom: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(bom)}.sig")


def sign_bom(bom: str | os.PathLike[str], signature: str | os.PathLike[str] | None = None, *,
             key: str | None = None, password: str | None = None,
             certificate: str | None = None, chain: Sequence[str] = (),
             sigstore: bool = False, identity_token: str | None = None,
             use_staging: bool = False, trust_config: str | None = None) -> Path:
    """Sign the BOM file; returns the signature path (default ``BOM.sig``)."""
    sig = Path(signature) if signature is not None else default_bom_signature(bom)
    try:
        sign_model(bom, sig, key=key, password=password, certificate=certificate,
                   chain=chain, sigstore=sigstore, identity_token=identity_token,
                   use_staging=use_staging, trust_config=trust_config)
    except SigningInputError as exc:
        raise SbomInputError(str(exc)) from exc
    except SigningError as exc:
        raise SbomError(f"signing the BOM failed: {exc}") from exc
    return sig


def verify_bom_signature(bom: str | os.PathLike[str], signature: str | os.PathLike[str],
                         trust: Trust) -> VerificationResult:
    """Any trusted anchor that accepts the signature over the BOM's bytes wins."""
    if not Path(bom).is_file():
        raise SbomInputError(f"{bom}: no such BOM file")
    if not Path(signature).is_file():
        raise SbomInputError(f"{signature}: no such signature file")
    policy = SignaturePolicy(
        require=True, signature=os.path.abspath(signature), public_keys=trust.public_keys,
        certificate_chain=trust.certificate_chain,
        identities=tuple(Identity(i, iss) for i, iss in trust.identities),
        trust_root=trust.trust_root)
    return verify_model_signature(bom, policy)
