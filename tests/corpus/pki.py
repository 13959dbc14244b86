"""Locally generated signing material for tests: EC keys, and a private CA (root ->
intermediate -> leaf, the leaf carrying an e-mail SAN and Fulcio's OIDC-issuer extension)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SIGNER = "release@example.com"
ISSUER = "https://accounts.example.com"
_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _write_pub(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer_name: x509.Name | None,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool, san: str | None = None,
          oidc_issuer: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                          False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]),
                            critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(san)]),
                            critical=False)
    if oidc_issuer:
        raw = oidc_issuer.encode()
        b = b.add_extension(x509.UnrecognizedExtension(_ISSUER_V2,
                                                       bytes([0x0C, len(raw)]) + raw),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass(frozen=True)
class Pki:
    key: Path  # plain EC signing key
    pub: Path
    other_pub: Path  # a key nobody signed with
    root: Path
    intermediate: Path
    leaf_key: Path
    leaf: Path
    other_root: Path  # an unrelated CA
    wrong_leaf_key: Path  # a leaf for someone else, under the same CA
    wrong_leaf: Path


PKI_FILES = {"key": "key.pem", "pub": "pub.pem", "other_pub": "other.pub.pem",
             "root": "root.pem", "intermediate": "intermediate.pem",
             "leaf_key": "leaf.key.pem", "leaf": "leaf.pem", "other_root": "other-root.pem",
             "wrong_leaf_key": "wrong.key.pem", "wrong_leaf": "wrong.pem"}


def make_pki(d: Path) -> Pki:
    """Keys and a private CA written under ``d`` (created if needed)."""
    d.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    root_key = ec.generate_private_key(ec.SECP384R1())
    int_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    wrong_key = ec.generate_private_key(ec.SECP256R1())
    other_root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Test Root CA", root_key, None, root_key, ca=True)
    inter = _cert("Test Intermediate", int_key, root.subject, root_key, ca=True)
    leaf = _cert("release signer", leaf_key, inter.subject, int_key, ca=False, san=SIGNER,
                 oidc_issuer=ISSUER)
    wrong = _cert("someone else", wrong_key, inter.subject, int_key, ca=False,
                  san="mallory@example.com", oidc_issuer=ISSUER)
    other_root = _cert("Other Root", other_root_key, None, other_root_key, ca=True)
    return Pki(
        key=_write_key(key, d / "key.pem"), pub=_write_pub(key, d / "pub.pem"),
        other_pub=_write_pub(other, d / "other.pub.pem"),
        root=_pem(root, d / "root.pem"), intermediate=_pem(inter, d / "intermediate.pem"),
        leaf_key=_write_key(leaf_key, d / "leaf.key.pem"), leaf=_pem(leaf, d / "leaf.pem"),
        other_root=_pem(other_root, d / "other-root.pem"),
        wrong_leaf_key=_write_key(wrong_key, d / "wrong.key.pem"),
        wrong_leaf=_pem(wrong, d / "wrong.pem"))
