"""Read an OpenSSF model-signing signature (a Sigstore bundle holding a DSSE envelope) without
trusting it: bounded, JSON only, and only to learn how it was made (key, certificate chain or
Sigstore; serialization parameters). Trust decisions are made by model_signing's verifiers."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mlwarden.signing.errors import SignatureFormatError, SigningInputError

# A sharded manifest of a very large model is still far below this; anything bigger is not
# a signature we produced or model_signing produced.
MAX_SIGNATURE_BYTES = 64 << 20
MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
# Fulcio's OIDC issuer extensions: v1 holds the raw string, v2 a DER UTF8String.
_HASH_NAMES = {"sha256": "sha256", "blake2b": "blake2", "blake2": "blake2", "blake3": "blake3"}
_FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


@dataclass(frozen=True)
class Serialization:
    """How the signed manifest was hashed; verification must hash the same way."""

    method: str  # "files" | "shards"
    hash_type: str  # sha256 | blake2 | blake3
    shard_size: int | None
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]


@dataclass(frozen=True)
class Bundle:
    kind: str  # "key" | "certificate" | "sigstore"
    serialization: Serialization
    resources: int
    leaf: x509.Certificate | None  # signing certificate (certificate and sigstore kinds)
    key_hint: str | None


def _get(d: dict[str, Any], *names: str) -> Any:
    """protobuf JSON may use camelCase or the original snake_case field names."""
    for n in names:
        if n in d:
            return d[n]
    return None


def read_bundle(path: Path) -> Bundle:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        raise SigningInputError(f"{path}: no such signature file") from None
    except OSError as exc:
        raise SigningInputError(f"{path}: cannot read signature: {exc.strerror}") from exc
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureFormatError(f"{path}: larger than {MAX_SIGNATURE_BYTES} bytes; "
                                   "not a model signature")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise SignatureFormatError(f"{path}: malformed signature (not a JSON Sigstore "
                                   "bundle)") from None
    if not isinstance(doc, dict):
        raise SignatureFormatError(f"{path}: malformed signature (not a JSON object)")
    return parse_bundle(doc, str(path))


def parse_bundle(doc: dict[str, Any], where: str) -> Bundle:
    def bad(msg: str) -> SignatureFormatError:
        return SignatureFormatError(f"{where}: malformed signature: {msg}")

    material = _get(doc, "verificationMaterial", "verification_material")
    envelope = _get(doc, "dsseEnvelope", "dsse_envelope")
    if not isinstance(material, dict) or not isinstance(envelope, dict):
        raise bad("no verification material or DSSE envelope")
    leaf: x509.Certificate | None = None
    key_hint: str | None = None
    chain = _get(material, "x509CertificateChain", "x509_certificate_chain")
    if isinstance(chain, dict):
        kind = "certificate"
        certs = _get(chain, "certificates")
        if not isinstance(certs, list) or not certs or not isinstance(certs[0], dict):
            raise bad("empty certificate chain")
        leaf = _cert(_get(certs[0], "rawBytes", "raw_bytes"), bad)
    elif isinstance(_get(material, "certificate"), dict):
        kind = "sigstore"
        leaf = _cert(_get(material["certificate"], "rawBytes", "raw_bytes"), bad)
    elif isinstance(_get(material, "publicKey", "public_key"), dict):
        kind = "key"
        hint = _get(material[next(k for k in ("publicKey", "public_key") if k in material)],
                    "hint")
        key_hint = hint if isinstance(hint, str) else None
    else:
        raise bad("unknown verification material")
    payload_b64 = _get(envelope, "payload")
    if not isinstance(payload_b64, str):
        raise bad("DSSE envelope has no payload")
    try:
        statement = json.loads(base64.b64decode(payload_b64, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise bad("DSSE payload is not base64 JSON") from None
    if not isinstance(statement, dict) or not isinstance(statement.get("predicate"), dict):
        raise bad("DSSE payload is not an in-toto statement")
    if statement.get("predicateType") != MODEL_SIGNING_PREDICATE:
        raise bad(f"predicate type {statement.get('predicateType')!r} is not "
                  f"{MODEL_SIGNING_PREDICATE}")
    pred = statement["predicate"]
    ser = pred.get("serialization")
    if not isinstance(ser, dict):
        raise bad("no serialization parameters")
    resources = pred.get("resources")
    return Bundle(kind, _serialization(ser, bad),
                  len(resources) if isinstance(resources, list) else 0, leaf, key_hint)


def _cert(raw: Any, bad: Any) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(str(raw), validate=True))
    except (binascii.Error, ValueError):
        raise bad("unreadable signing certificate") from None


def _serialization(ser: dict[str, Any], bad: Any) -> Serialization:
    method = ser.get("method")
    hash_type = ser.get("hash_type")
    if method not in ("files", "shards"):
        raise bad(f"unknown serialization method {method!r}")
    # The manifest records digest names ("blake2b"); hashing.Config takes its own names.
    if hash_type not in _HASH_NAMES:
        raise bad(f"unknown hash type {hash_type!r}")
    hash_type = _HASH_NAMES[hash_type]
    shard_size: int | None = None
    if method == "shards":
        # Stored in a protobuf Struct, the shard size comes back as a float (1024.0); the
        # library's own guess passes it on unchanged and fails. Read it as an integer.
        raw = ser.get("shard_size")
        if not isinstance(raw, (int, float)) or isinstance(raw, bool) or raw <= 0 \
                or raw != int(raw):
            raise bad(f"invalid shard size {raw!r}")
        shard_size = int(raw)
    ignore = ser.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise bad("ignore_paths is not a list of strings")
    return Serialization(method, hash_type, shard_size, ser.get("allow_symlinks") is True,
                         tuple(ignore))


# ----------------------------------------------------------------------------- identity


def certificate_identities(cert: x509.Certificate) -> list[str]:
    """The e-mail addresses and URIs in the certificate's subject alternative name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.RFC822Name),
            *san.get_values_for_type(x509.UniformResourceIdentifier)]


def certificate_issuer(cert: x509.Certificate) -> str | None:
    """The OIDC issuer recorded by Fulcio (or a private CA following its convention)."""
    for oid in (_FULCIO_ISSUER_V2, _FULCIO_ISSUER_V1):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
        if oid == _FULCIO_ISSUER_V2:
            decoded = _der_utf8(raw)
            if decoded is not None:
                return decoded
            continue
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _der_utf8(raw: bytes) -> str | None:
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, pos = raw[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or len(raw) < 2 + n:
            return None
        length, pos = int.from_bytes(raw[2:2 + n], "big"), 2 + n
    if pos + length != len(raw):
        return None
    try:
        return raw[pos:].decode("utf-8")
    except UnicodeDecodeError:
        return None
