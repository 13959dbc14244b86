"""Authenticated encryption of instruction files (ChaCha20-Poly1305).

File layout (all bytes authenticated; the header and the file's logical relative path are the
associated data, so a ciphertext copied over another instruction file is rejected):

    magic    8  b"\\x89MLWENC\\n"   (high bit and newline catch text-mode mangling)
    version  1  1
    alg      1  1 = ChaCha20-Poly1305
    key id   8  first bytes of sha256(AEAD key): "encrypted with another key" is explicit
    nonce   12  random per encryption
    body        ciphertext + 16-byte tag

The logical path is the file's path relative to the project root, without the ``.mlwenc``
suffix: ``CLAUDE.md.mlwenc`` and an in-place encrypted ``CLAUDE.md`` both bind "CLAUDE.md".
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mlwarden.memory.discover import ENCRYPTED_SUFFIX
from mlwarden.memory.errors import InvalidCiphertext, MemoryGuardError
from mlwarden.memory.fileio import MiB, read_bounded

MAGIC = b"\x89MLWENC\n"
VERSION = 1
ALG_CHACHA20_POLY1305 = 1
_HEADER = struct.Struct(">8sBB8s12s")
HEADER_SIZE = _HEADER.size
TAG_SIZE = 16
MAX_PLAINTEXT = 16 * MiB
ROOT_MARKERS = (".mlwarden", ".git", ".hg")


@dataclass(frozen=True)
class Header:
    version: int
    alg: int
    key_id: bytes
    nonce: bytes


def aead_key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"mlwarden-memory-key-id" + key).digest()[:8]


def find_root(path: Path) -> Path:
    """The project root a file's name is bound relative to: the nearest ancestor holding
    .mlwarden, .git or .hg, else the file's own directory."""
    start = Path(os.path.abspath(path)).parent
    for d in (start, *start.parents):
        if any((d / m).exists() for m in ROOT_MARKERS):
            return d
    return start


def logical_name(path: Path, root: Path | None = None) -> str:
    """The relative path bound into the ciphertext (``.mlwenc`` suffix removed)."""
    absolute = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root)) if root is not None else find_root(path)
    try:
        rel = absolute.relative_to(base).as_posix()
    except ValueError as exc:
        raise MemoryGuardError(f"{path} is not inside the root {base}") from exc
    return rel[: -len(ENCRYPTED_SUFFIX)] if rel.endswith(ENCRYPTED_SUFFIX) else rel


def _aad(header: bytes, name: str) -> bytes:
    return header + b"\x00path\x00" + name.encode("utf-8")


def encrypt_bytes(plaintext: bytes, key: bytes, name: str) -> bytes:
    if len(plaintext) > MAX_PLAINTEXT:
        raise MemoryGuardError(f"{name}: larger than {MAX_PLAINTEXT} bytes")
    nonce = os.urandom(12)
    header = _HEADER.pack(MAGIC, VERSION, ALG_CHACHA20_POLY1305, aead_key_id(key), nonce)
    return header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, _aad(header, name))


def is_encrypted(data: bytes) -> bool:
    return data.startswith(MAGIC)


def decrypt_bytes(data: bytes, key: bytes, name: str) -> bytes:
    """Plaintext, or InvalidCiphertext: the bytes are never returned unauthenticated."""
    if not data.startswith(MAGIC):
        raise InvalidCiphertext(
            f"{name}: not an mlwarden-encrypted file (plaintext or foreign bytes were "
            f"written in its place); refusing to use it")
    if len(data) < HEADER_SIZE + TAG_SIZE:
        raise InvalidCiphertext(f"{name}: truncated encrypted file")
    _magic, version, alg, kid, nonce = _HEADER.unpack_from(data)
    if version != VERSION or alg != ALG_CHACHA20_POLY1305:
        raise InvalidCiphertext(f"{name}: unsupported encrypted-file version {version}/{alg}")
    if kid != aead_key_id(key):
        raise InvalidCiphertext(f"{name}: encrypted with another key (key id {kid.hex()}, "
                                f"this key is {aead_key_id(key).hex()})")
    header = data[:HEADER_SIZE]
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, data[HEADER_SIZE:], _aad(header, name))
    except InvalidTag:
        raise InvalidCiphertext(
            f"{name}: authentication failed: the file was modified, truncated, or copied "
            f"from another path") from None


def read_encrypted(path: Path, key: bytes, root: Path | None = None) -> bytes:
    try:
        data = read_bounded(path, MAX_PLAINTEXT + HEADER_SIZE + TAG_SIZE)
    except ValueError as exc:
        raise InvalidCiphertext(f"{path}: too large to be an encrypted instruction file") \
            from exc
    except OSError as exc:
        raise MemoryGuardError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decrypt_bytes(data, key, logical_name(path, root))


def _coerce_key(key: object) -> bytes:
    from mlwarden.memory.keys import KeySource, aead_key, load_private

    if isinstance(key, Ed25519PrivateKey):
        return aead_key(key)
    if isinstance(key, bytes):
        if len(key) != 32:
            raise MemoryGuardError("a raw AEAD key must be 32 bytes")
        return key
    if isinstance(key, (str, os.PathLike)):
        return aead_key(load_private(KeySource(path=Path(key))))
    raise TypeError("key must be a key-file path, an Ed25519PrivateKey or 32 raw bytes")


def read_instructions(path: str | os.PathLike[str], key: object,
                      root: str | os.PathLike[str] | None = None) -> str:
    """Decrypted instructions, returned only after authentication succeeds.

    ``key`` is the memory key file's path, an ``Ed25519PrivateKey``, or 32 raw AEAD-key
    bytes. Raises ``InvalidCiphertext`` for anything an attacker could have written
    (tampered, truncated, renamed, plaintext in place of ciphertext) and
    ``MemoryGuardError`` for a missing file or key.
    """
    data = read_encrypted(Path(path), _coerce_key(key), Path(root) if root else None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCiphertext(f"{path}: decrypted content is not UTF-8") from exc
