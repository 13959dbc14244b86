"""Sign a model in the OpenSSF model-signing format through the model_signing library, so the
``model_signing`` tool verifies what we sign. The signature is written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlwarden.signing.bundle import read_bundle
from mlwarden.signing.errors import SigningError, SigningInputError
from mlwarden.util.fs import atomic_write_bytes

HASH_ALGORITHMS = ("sha256", "blake2", "blake3")
SIGNATURE_NAME = "model.sig"


@dataclass(frozen=True)
class SignResult:
    model: Path
    signature: Path
    method: str  # key | certificate | sigstore
    resources: int  # files (or shards) in the signed manifest
    ignored: tuple[str, ...]


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """``model.sig`` beside the model: what ``model_signing sign`` writes when run from the
    model's parent directory (its default is ``model.sig`` in the working directory)."""
    return Path(os.path.abspath(model)).parent / SIGNATURE_NAME


def relative_inside(model: Path, path: Path) -> str | None:
    """``path`` relative to the model directory when it lies inside it (then it must not be
    part of the signed manifest), else None."""
    root = Path(os.path.abspath(model))
    if not root.is_dir():
        return None
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return None


def check_model(model: Path) -> None:
    if not os.path.lexists(model):
        raise SigningInputError(f"{model}: no such file or directory")
    if not (model.is_dir() or model.is_file()):
        raise SigningInputError(f"{model}: not a regular file or directory")
    if not os.access(model, os.R_OK | (os.X_OK if model.is_dir() else 0)):
        raise SigningInputError(f"{model}: not readable")


def hashing_config(*, hash_algorithm: str = "sha256", shard_size: int | None = None,
                   ignore_paths: Sequence[str] = (), ignore_git_paths: bool = True,
                   allow_symlinks: bool = False) -> object:
    from model_signing import hashing

    if hash_algorithm not in HASH_ALGORITHMS:
        raise SigningInputError(f"unknown hash algorithm {hash_algorithm!r}")
    cfg = hashing.Config()  # type: ignore[no-untyped-call]
    if shard_size is not None:
        if shard_size <= 0:
            raise SigningInputError("shard size must be positive")
        cfg.use_shard_serialization(hashing_algorithm=hash_algorithm,  # type: ignore[arg-type]
                                    shard_size=shard_size, allow_symlinks=allow_symlinks)
    else:
        cfg.use_file_serialization(hashing_algorithm=hash_algorithm,  # type: ignore[arg-type]
                                   allow_symlinks=allow_symlinks)
    cfg.set_ignored_paths(paths=list(ignore_paths), ignore_git_paths=ignore_git_paths)
    cfg.set_allow_symlinks(allow_symlinks)
    return cfg


def _load_private_key(path: Path, password: str | None) -> object:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningInputError(f"{path}: no such key file") from None
    except OSError as exc:
        raise SigningInputError(f"{path}: cannot read key: {exc.strerror}") from exc
    try:
        key = load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise SigningInputError(f"{path}: not a usable PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningInputError(f"{path}: model-signing needs an elliptic-curve key "
                                "(P-256, P-384 or P-521)")
    return key


def _check_certificate(cert_path: Path, key: object) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        raise SigningInputError(f"{cert_path}: no such certificate file") from None
    except (OSError, ValueError) as exc:
        raise SigningInputError(f"{cert_path}: not a PEM certificate ({exc})") from None
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    if cert.public_key() != key.public_key():
        raise SigningInputError(f"{cert_path}: certificate does not match the private key")


def sign_model(
    model: str | os.PathLike[str], signature: str | os.PathLike[str] | None = None, *,
    key: str | os.PathLike[str] | None = None, password: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    chain: Sequence[str | os.PathLike[str]] = (),
    sigstore: bool = False, identity_token: str | None = None, use_staging: bool = False,
    trust_config: str | os.PathLike[str] | None = None,
    hash_algorithm: str = "sha256", shard_size: int | None = None,
    ignore_paths: Sequence[str] = (), ignore_git_paths: bool = True,
) -> SignResult:
    """Sign ``model`` with an EC key, an EC key plus certificate chain, or Sigstore."""
    import model_signing

    model_path = Path(model)
    check_model(model_path)
    sig_path = Path(signature) if signature is not None else default_signature_path(model)
    ignored = list(ignore_paths)
    inside = relative_inside(model_path, sig_path)
    if inside is not None:
        ignored.append(inside)  # as model_signing does: the signature never signs itself
    cfg = model_signing.signing.Config().set_hashing_config(  # type: ignore[no-untyped-call]
        hashing_config(hash_algorithm=hash_algorithm, shard_size=shard_size,  # type: ignore[arg-type]
                       ignore_paths=ignored, ignore_git_paths=ignore_git_paths))
    if sigstore:
        method = "sigstore"
        _sigstore_signer(cfg, identity_token, use_staging, trust_config)
    elif key is not None:
        key_obj = _load_private_key(Path(key), password)
        if certificate is not None:
            method = "certificate"
            _check_certificate(Path(certificate), key_obj)
            for c in chain:
                if not Path(c).is_file():
                    raise SigningInputError(f"{c}: no such certificate file")
            cfg.use_certificate_signer(private_key=key, signing_certificate=certificate,
                                       certificate_chain=list(chain))
        else:
            method = "key"
            cfg.use_elliptic_key_signer(private_key=key, password=password)
    else:
        raise SigningInputError("no signer: give --key (optionally with --cert) or --sigstore")
    # Sign into a private temp directory outside the model, then move the result into place
    # atomically: a killed run never leaves a half-written signature.
    with tempfile.TemporaryDirectory(prefix="mlwarden-sign-") as tmp:
        out = Path(tmp) / SIGNATURE_NAME
        try:
            cfg.sign(model_path, out)
        except SigningError:
            raise
        except Exception as exc:
            if method == "sigstore":
                raise SigningError(f"Sigstore signing failed (it needs network access to "
                                   f"Fulcio and Rekor and an OIDC identity): {exc}") from exc
            raise SigningError(f"signing failed: {exc}") from exc
        data = out.read_bytes()
    try:
        atomic_write_bytes(sig_path, data)
    except OSError as exc:
        raise SigningInputError(f"cannot write {sig_path}: {exc.strerror}") from exc
    b = read_bundle(sig_path)
    return SignResult(model_path, sig_path, method, b.resources, b.serialization.ignore_paths)


def _sigstore_signer(cfg: object, identity_token: str | None, use_staging: bool,
                     trust_config: str | os.PathLike[str] | None) -> None:
    """Keyless signing. Without an explicit token we only accept ambient credentials: the
    interactive browser flow would hang a CI job or a headless server."""
    token = identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
    if token is None:
        try:
            from sigstore.oidc import detect_credential

            token = detect_credential()
        except Exception as exc:
            raise SigningError(f"cannot detect an ambient OIDC credential: {exc}") from exc
        if token is None:
            raise SigningInputError("Sigstore signing needs an OIDC identity token: pass "
                                    "--identity-token (or SIGSTORE_ID_TOKEN), or run where "
                                    "ambient credentials exist (e.g. GitHub Actions)")
    try:
        cfg.use_sigstore_signer(  # type: ignore[attr-defined]
            identity_token=token, use_staging=use_staging,
            trust_config=Path(trust_config) if trust_config else None)
    except Exception as exc:
        raise SigningError(f"Sigstore is unavailable (offline?): {exc}") from exc
