"""Verify a model-signing signature with model_signing's verifiers, configured from the
signature's own serialization parameters, then check the signer identity ourselves."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlwarden.signing.bundle import (
    Bundle,
    certificate_identities,
    certificate_issuer,
    read_bundle,
)
from mlwarden.signing.errors import SignatureFormatError, SigningInputError
from mlwarden.signing.sign import check_model, hashing_config, relative_inside

_CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
_TRUSTED_ROOT = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
_SIGNING_CONFIG = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
_GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    model: str
    signature: str
    method: str | None = None  # key | certificate | sigstore
    identities: tuple[str, ...] = ()  # SAN e-mails/URIs of the signing certificate
    issuer: str | None = None  # OIDC issuer extension of the signing certificate
    resources: int = 0
    serialization: str = ""  # "files/sha256", "shards/sha256/1000000000"
    unsigned: tuple[str, ...] = ()  # paths the signer excluded that exist in the model
    error: str | None = None
    tried: tuple[str, ...] = field(default_factory=tuple)  # reasons of failed alternatives

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "model": self.model, "signature": self.signature,
                "method": self.method, "identities": list(self.identities),
                "issuer": self.issuer, "resources": self.resources,
                "serialization": self.serialization, "unsigned": list(self.unsigned),
                "error": self.error, "tried": list(self.tried)}


def _fail(model: Path, sig: Path, msg: str, bundle: Bundle | None = None) -> VerificationResult:
    return VerificationResult(False, str(model), str(sig),
                              method=bundle.kind if bundle else None, error=msg)


def verify_signature(
    model: str | os.PathLike[str], signature: str | os.PathLike[str], *,
    public_key: str | os.PathLike[str] | None = None,
    cert_chain: Sequence[str | os.PathLike[str]] = (),
    identity: str | None = None, issuer: str | None = None,
    trust_root: str | os.PathLike[str] | None = None, use_staging: bool = False,
) -> VerificationResult:
    """Verify ``model`` against ``signature`` with exactly one trust anchor:

    - ``public_key``: the EC key the signature was made with;
    - ``cert_chain``: CA certificates the signing certificate must chain to; ``identity`` /
      ``issuer``, when given, must match the leaf's SAN and OIDC-issuer extension;
    - ``identity`` + ``issuer`` alone: Sigstore keyless, checked against ``trust_root`` (a
      pinned trusted_root.json or client trust config; without it, Sigstore's TUF, online).

    Missing inputs raise SigningInputError; any verification failure returns ok=False.
    """
    import model_signing

    model_path, sig_path = Path(model), Path(signature)
    check_model(model_path)
    modes = sum([public_key is not None, bool(cert_chain),
                 identity is not None and not cert_chain])
    if modes != 1:
        raise SigningInputError("give exactly one of --public-key, --cert-chain, or "
                                "--identity with --issuer (Sigstore)")
    if public_key is not None and (identity or issuer):
        raise SigningInputError("--identity/--issuer need a certificate (--cert-chain) or "
                                "Sigstore; a bare public key carries no identity")
    for p in [*([public_key] if public_key is not None else []), *cert_chain,
              *([trust_root] if trust_root is not None else [])]:
        if not Path(p).is_file():
            raise SigningInputError(f"{p}: no such file")
    try:
        bundle = read_bundle(sig_path)
    except SignatureFormatError as exc:
        return _fail(model_path, sig_path, str(exc))

    cfg = model_signing.verifying.Config()  # type: ignore[no-untyped-call]
    if public_key is not None:
        if bundle.kind != "key":
            return _fail(model_path, sig_path, f"the signature was made with a "
                         f"{bundle.kind} signer, not a bare key", bundle)
        cfg.use_elliptic_key_verifier(public_key=public_key)
    elif cert_chain:
        if bundle.kind != "certificate":
            return _fail(model_path, sig_path, f"the signature was made with a "
                         f"{bundle.kind} signer, not a certificate", bundle)
        mismatch = identity_mismatch(bundle, identity, issuer)
        if mismatch:
            return _fail(model_path, sig_path, mismatch, bundle)
        cfg.use_certificate_verifier(certificate_chain=list(cert_chain))
    else:
        if issuer is None:
            raise SigningInputError("Sigstore verification needs --issuer with --identity")
        if bundle.kind != "sigstore":
            return _fail(model_path, sig_path, f"the signature was made with a "
                         f"{bundle.kind} signer, not Sigstore", bundle)
        try:
            with _trust_config(trust_root) as tc:
                cfg.use_sigstore_verifier(identity=identity or "", oidc_issuer=issuer,
                                          use_staging=use_staging, trust_config=tc)
        except Exception as exc:
            where = "the pinned trust root" if trust_root else \
                "Sigstore's trust root (online, or pass --trust-root)"
            return _fail(model_path, sig_path, f"cannot load {where}: {exc}", bundle)

    ser = bundle.serialization
    ignored = list(ser.ignore_paths)
    inside = relative_inside(model_path, sig_path)
    if inside is not None and inside not in ignored:
        ignored.append(inside)
    # Hash exactly as the signer did: the manifest's own method, algorithm, shard size and
    # ignore list (git paths are in that list when the signer ignored them).
    cfg.set_hashing_config(hashing_config(  # type: ignore[arg-type]
        hash_algorithm=ser.hash_type, shard_size=ser.shard_size, ignore_paths=ignored,
        ignore_git_paths=False, allow_symlinks=ser.allow_symlinks))
    try:
        cfg.verify(model_path, sig_path)
    except Exception as exc:
        msg = str(exc) or type(exc).__name__
        return _fail(model_path, sig_path, f"verification failed: {msg}", bundle)
    return VerificationResult(
        True, str(model_path), str(sig_path), method=bundle.kind,
        identities=tuple(certificate_identities(bundle.leaf)) if bundle.leaf else (),
        issuer=certificate_issuer(bundle.leaf) if bundle.leaf else None,
        resources=bundle.resources, serialization=describe(bundle),
        unsigned=_unsigned(model_path, ser.ignore_paths, inside))


def describe(bundle: Bundle) -> str:
    s = bundle.serialization
    return "/".join([s.method, s.hash_type, *([str(s.shard_size)] if s.shard_size else [])])


def identity_mismatch(bundle: Bundle, identity: str | None, issuer: str | None) -> str | None:
    """model_signing checks the chain but not who the certificate names: we do."""
    if bundle.leaf is None or (identity is None and issuer is None):
        return None
    names = certificate_identities(bundle.leaf)
    if identity is not None and identity not in names:
        return (f"signer identity mismatch: certificate names {', '.join(names) or 'nobody'}, "
                f"expected {identity}")
    if issuer is not None:
        got = certificate_issuer(bundle.leaf)
        if got != issuer:
            return f"signer issuer mismatch: certificate says {got or 'none'}, expected {issuer}"
    return None


def _unsigned(model: Path, ignore: Sequence[str], signature_inside: str | None) -> tuple[str, ...]:
    """Excluded paths that exist: content the signature does not vouch for."""
    if not model.is_dir():
        return ()
    return tuple(p for p in ignore if p not in _GIT_PATHS and p != signature_inside
                 and os.path.lexists(model / p))


class _trust_config:
    """A ClientTrustConfig path for model_signing; a bare trusted_root.json is wrapped."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path | None:
        if self.path is None:
            return None
        try:
            doc = json.loads(self.path.read_bytes()[: 16 << 20])
        except (OSError, ValueError) as exc:
            raise SigningInputError(f"{self.path}: not a Sigstore trust root: {exc}") from None
        media = doc.get("mediaType") if isinstance(doc, dict) else None
        if media == _CLIENT_TRUST_CONFIG:
            return self.path
        if media != _TRUSTED_ROOT:
            raise SigningInputError(f"{self.path}: not a Sigstore trusted root or client "
                                    f"trust config (mediaType {media!r})")
        self._tmp = tempfile.TemporaryDirectory(prefix="mlwarden-trust-")
        wrapped = Path(self._tmp.name) / "trust_config.json"
        wrapped.write_text(json.dumps({
            "mediaType": _CLIENT_TRUST_CONFIG, "trustedRoot": doc,
            "signingConfig": {"mediaType": _SIGNING_CONFIG}}))
        return wrapped

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
