"""The approval log's Ed25519 signing key. It lives outside the store (whoever can write the
store must not also hold the key), is created on first use with mode 0600, and is named in
entries by a short key id so keys can be rotated."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlwarden.approvals.errors import ApprovalLogError

KEY_ENV = "MLWARDEN_LOG_KEY"


def default_key_path() -> Path:
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mlwarden" / "approvals-ed25519.pem"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_key(path: str | os.PathLike[str] | None, store_root: Path | None = None,
                       create: bool = True) -> Ed25519PrivateKey:
    p = Path(path) if path is not None else default_key_path()
    if store_root is not None and _inside(p, store_root):
        raise ApprovalLogError(f"{p}: the log signing key must live outside the store")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        if not create:
            raise ApprovalLogError(f"{p}: no such key") from None
        return _create(p)
    except OSError as exc:
        raise ApprovalLogError(f"{p}: cannot read key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError) as exc:
        raise ApprovalLogError(f"{p}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ApprovalLogError(f"{p}: the approval log needs an Ed25519 key")
    return key


def _create(p: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two first runs racing must not each create (and use) a different key.
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create_key(p, create=False)
    except OSError as exc:
        raise ApprovalLogError(f"{p}: cannot create key: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def load_public_keys(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id, from PEM files that may each hold several keys."""
    keys: dict[str, Ed25519PublicKey] = {}
    for p in paths:
        try:
            text = p.read_text()
        except OSError as exc:
            raise ApprovalLogError(f"{p}: cannot read public key: {exc.strerror}") from exc
        blocks = [b for b in text.split("-----END PUBLIC KEY-----") if "-----BEGIN" in b]
        if not blocks:
            raise ApprovalLogError(f"{p}: no PEM public key")
        for b in blocks:
            try:
                k = serialization.load_pem_public_key((b + "-----END PUBLIC KEY-----\n")
                                                      .strip().encode() + b"\n")
            except ValueError as exc:
                raise ApprovalLogError(f"{p}: unreadable public key ({exc})") from None
            if not isinstance(k, Ed25519PublicKey):
                raise ApprovalLogError(f"{p}: not an Ed25519 public key")
            keys[key_id(k)] = k
    return keys


def _inside(p: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(p)).relative_to(os.path.abspath(root))
        return True
    except ValueError:
        return False
