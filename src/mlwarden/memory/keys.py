"""The memory key: one Ed25519 private key that signs seals and, through HKDF, yields the
AEAD key for encrypted instruction files.

The key must live outside every tree an agent can write (the project root, ~/.claude, ...):
a process that can rewrite CLAUDE.md there could otherwise read the key and re-sign. A
public key alone is enough to verify, so the agent's environment need not hold the secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlwarden.memory.errors import KeyProblem
from mlwarden.util.fs import atomic_write_bytes, file_lock

KEYRING_USER = "mlwarden-memory"
MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class KeySource:
    """Where the key comes from: a file path, or a keyring service name."""

    path: Path | None = None
    keyring_service: str | None = None

    def describe(self) -> str:
        return str(self.path) if self.path else f"keyring service {self.keyring_service!r}"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def aead_key(private: Ed25519PrivateKey) -> bytes:
    """A 256-bit symmetric key derived from the signing key, domain-separated."""
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    return HKDF(hashes.SHA256(), 32, salt=b"mlwarden-memory",
                info=b"mlwarden memory aead key v1").derive(seed)


def _inside(path: Path, tree: Path) -> bool:
    try:
        path.relative_to(tree)
        return True
    except ValueError:
        return False


def refuse_key_inside(key_path: Path, trees: Iterable[Path]) -> None:
    """A key inside a tree the agent can write would let the attacker re-sign."""
    candidates = {Path(os.path.abspath(key_path))}
    with contextlib.suppress(OSError):
        candidates.add(key_path.resolve())
    for tree in trees:
        tree_forms = {Path(os.path.abspath(tree))}
        with contextlib.suppress(OSError):
            tree_forms.add(tree.resolve())
        for k in candidates:
            for t in tree_forms:
                if _inside(k, t):
                    raise KeyProblem(
                        f"key {key_path} is inside {os.path.abspath(tree)}, a tree the agent "
                        f"can write; keep "
                        f"it outside (for example ~/.config/mlwarden/memory.key) or use "
                        f"--keyring")


def _pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _parse_private(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"{where} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{where} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _keyring() -> Any:
    try:
        import keyring
    except ImportError as exc:
        raise KeyProblem("--keyring needs the 'keyring' package: pip install keyring "
                         "(or use --key FILE)") from exc
    return keyring


def load_private(source: KeySource, create: bool = False,
                 warnings: list[str] | None = None) -> Ed25519PrivateKey:
    """Load the private key; with ``create``, make one if there is none (0600, atomic)."""
    if source.keyring_service is not None:
        kr = _keyring()
        try:
            stored = kr.get_password(source.keyring_service, KEYRING_USER)
            if stored is None and create:
                key = Ed25519PrivateKey.generate()
                kr.set_password(source.keyring_service, KEYRING_USER, _pem(key).decode())
                return key
        except Exception as exc:  # keyring backends raise their own error types
            raise KeyProblem(f"keyring error: {exc}") from exc
        if stored is None:
            raise KeyProblem(f"no key in keyring service {source.keyring_service!r}")
        return _parse_private(stored.encode(), f"keyring service {source.keyring_service!r}")
    assert source.path is not None
    path = source.path
    if not path.exists() and create:
        parent = path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        # Two seals racing must not each create (and one overwrite) a key.
        with file_lock(str(path) + ".lock"):
            if not path.exists():
                key = Ed25519PrivateKey.generate()
                atomic_write_bytes(path, _pem(key), mode=0o600)
                if warnings is not None:
                    warnings.append(f"created new key {path} (mode 0600); back it up")
                return key
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise KeyProblem(f"key {path} is not a regular file")
        if st.st_mode & 0o077 and warnings is not None:
            warnings.append(f"key {path} is accessible to other users "
                            f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except FileNotFoundError as exc:
        raise KeyProblem(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyProblem(f"cannot read key {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise KeyProblem(f"key {path} is too large to be a key")
    return _parse_private(data, f"key {path}")


def load_public(path: Path) -> Ed25519PublicKey:
    """A PEM public key, or the public half of a PEM private key."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyProblem(f"cannot read public key {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" in data:
        return _parse_private(data, f"key {path}").public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyProblem(f"{path} is not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
