"""Verify on load: the guard asks "does this model carry a valid signature from someone we
trust?" and gets one VerificationResult. The trust configuration is data (a TOML table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.signing.errors import SigningError, SigningInputError
from mlwarden.signing.sign import default_signature_path
from mlwarden.signing.verify import VerificationResult, verify_signature


@dataclass(frozen=True)
class Identity:
    identity: str  # e-mail or URI in the signing certificate's SAN
    issuer: str | None = None  # OIDC issuer; required for Sigstore, optional for a private CA


@dataclass(frozen=True)
class SignaturePolicy:
    """Who may sign models. A signature is accepted when it verifies against any configured
    public key, or chains to ``certificate_chain`` and names one of ``identities``, or is a
    Sigstore signature of one of ``identities`` (checked against ``trust_root``)."""

    require: bool = True
    signature: str | None = None  # default: model.sig beside the model
    public_keys: tuple[Path, ...] = ()
    certificate_chain: tuple[Path, ...] = ()
    identities: tuple[Identity, ...] = ()
    trust_root: Path | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: str | os.PathLike[str] = ".") -> \
            SignaturePolicy:
        """Build from a ``[tool.mlwarden.signing]`` / ``[signing]`` table; relative paths
        are relative to ``base`` (the configuration file's directory)."""
        root = Path(base)

        def path(v: Any, key: str) -> Path:
            if not isinstance(v, str) or not v:
                raise SigningInputError(f"signing.{key}: expected a path string")
            return root / v

        def paths(key: str) -> tuple[Path, ...]:
            v = data.get(key, [])
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, list):
                raise SigningInputError(f"signing.{key}: expected a list of paths")
            return tuple(path(p, key) for p in v)

        unknown = set(data) - {"require", "signature", "public-keys", "certificate-chain",
                               "identities", "trust-root"}
        if unknown:
            raise SigningInputError(f"signing: unknown keys {', '.join(sorted(unknown))}")
        ids: list[Identity] = []
        for item in data.get("identities", []):
            if not isinstance(item, Mapping) or not isinstance(item.get("identity"), str):
                raise SigningInputError("signing.identities: each entry needs identity = "
                                        "\"...\" (and issuer = \"...\")")
            iss = item.get("issuer")
            ids.append(Identity(item["identity"], iss if isinstance(iss, str) else None))
        require = data.get("require", True)
        sig = data.get("signature")
        return cls(require=bool(require), signature=sig if isinstance(sig, str) else None,
                   public_keys=paths("public-keys"),
                   certificate_chain=paths("certificate-chain"), identities=tuple(ids),
                   trust_root=path(data["trust-root"], "trust-root")
                   if "trust-root" in data else None)


def _signature_for(model: Path, policy: SignaturePolicy) -> Path:
    if policy.signature is None:
        return default_signature_path(model)
    p = Path(policy.signature)
    return p if p.is_absolute() else Path(os.path.abspath(model)).parent / p


def verify_model_signature(path: str | os.PathLike[str],
                           policy: SignaturePolicy) -> VerificationResult:
    """The first configured trust anchor that accepts the signature wins; otherwise ok=False
    with every reason in ``tried``. Never raises for a bad or missing signature."""
    model = Path(path)
    sig = _signature_for(model, policy)
    if not sig.exists():
        if not policy.require:
            return VerificationResult(True, str(model), str(sig),
                                      error="no signature (not required by policy)")
        return VerificationResult(False, str(model), str(sig),
                                  error=f"{sig}: no signature, and the policy requires one")
    attempts: list[dict[str, Any]] = [{"public_key": k} for k in policy.public_keys]
    if policy.certificate_chain:
        for ident in policy.identities or (None,):
            attempts.append({"cert_chain": policy.certificate_chain,
                             "identity": ident.identity if ident else None,
                             "issuer": ident.issuer if ident else None})
    else:
        attempts.extend({"identity": i.identity, "issuer": i.issuer,
                         "trust_root": policy.trust_root}
                        for i in policy.identities if i.issuer)
    if not attempts:
        return VerificationResult(False, str(model), str(sig),
                                  error="the signing policy names no key, CA or identity")
    reasons: list[str] = []
    for kw in attempts:
        try:
            res = verify_signature(model, sig, **kw)
        except SigningError as exc:
            reasons.append(str(exc))
            continue
        if res.ok:
            return res
        reasons.append(res.error or "verification failed")
    return VerificationResult(False, str(model), str(sig),
                              error="no trusted signer accepted the signature",
                              tried=tuple(reasons))
