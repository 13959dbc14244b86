"""Sign any in-toto Statement as a DSSE envelope inside a Sigstore bundle, in the same bundle
format OpenSSF model-signing writes (v0.3 media type, ``publicKey.hint`` = sha256 of the PEM
public key, or an ``x509CertificateChain``), and verify one without trusting it first.

Key and certificate modes use ``cryptography`` directly: importing model_signing costs most
of a second, which a training wrapper (``mlwarden attest``) cannot afford after every run.
The interop tests check both directions against model_signing's own verifiers. Keyless
signing and its verification go through sigstore-python (``sign_dsse`` / ``verify_dsse``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.signing.errors import SigningError, SigningInputError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
MAX_BUNDLE_BYTES = 64 << 20


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(body), body)


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The payload: compact, key-sorted JSON, so the same statement signs the same bytes."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _hash_for(public: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    # As model_signing (and Sigstore's key details): the digest follows the curve size.
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[
        public.curve.key_size]


def _pem_hint(public: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = public.public_bytes(serialization.Encoding.PEM,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def load_ec_private_key(path: str | os.PathLike[str], password: str | None = None) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SigningInputError(f"{p}: no such key file") from None
    except OSError as exc:
        raise SigningInputError(f"{p}: cannot read key: {exc.strerror}") from exc
    try:
        key = load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        raise SigningInputError(f"{p}: not a PEM private key, or a wrong password ({exc})") \
            from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            key.curve.key_size not in (256, 384, 521):
        raise SigningInputError(f"{p}: DSSE signing needs an elliptic-curve key "
                                "(P-256, P-384 or P-521)")
    return key


def load_ec_public_key(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    p = Path(path)
    try:
        key = load_pem_public_key(p.read_bytes())
    except FileNotFoundError:
        raise SigningInputError(f"{p}: no such public key file") from None
    except (OSError, ValueError) as exc:
        raise SigningInputError(f"{p}: not a PEM public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or \
            key.curve.key_size not in (256, 384, 521):
        raise SigningInputError(f"{p}: not an elliptic-curve public key (P-256/384/521)")
    return key


def _certs(paths: Sequence[str | os.PathLike[str]]) -> list[Any]:
    from cryptography import x509

    out = []
    for p in paths:
        try:
            out.extend(x509.load_pem_x509_certificates(Path(p).read_bytes()))
        except FileNotFoundError:
            raise SigningInputError(f"{p}: no such certificate file") from None
        except (OSError, ValueError) as exc:
            raise SigningInputError(f"{p}: not a PEM certificate ({exc})") from None
    return out


# ----------------------------------------------------------------------------- signing


def sign_statement(
    statement: Mapping[str, Any], *, key: str | os.PathLike[str] | None = None,
    password: str | None = None, certificate: str | os.PathLike[str] | None = None,
    chain: Sequence[str | os.PathLike[str]] = (), sigstore: bool = False,
    identity_token: str | None = None, use_staging: bool = False,
    trust_config: str | os.PathLike[str] | None = None,
) -> bytes:
    """The Sigstore bundle (JSON bytes) of a DSSE envelope over ``statement``."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise SigningInputError("not an in-toto Statement v1")
    payload = statement_bytes(statement)
    if sigstore:
        return _sign_sigstore(payload, identity_token, use_staging, trust_config)
    if key is None:
        raise SigningInputError("no signer: give a key (optionally with a certificate) or "
                                "use Sigstore")
    from cryptography.hazmat.primitives.asymmetric import ec

    private = load_ec_private_key(key, password)
    material: dict[str, Any]
    if certificate is not None:
        from cryptography.hazmat.primitives import serialization

        leaf, *_ = _certs([certificate])
        if leaf.public_key() != private.public_key():
            raise SigningInputError(f"{certificate}: certificate does not match the key")
        certs = [leaf, *_certs(chain)]
        material = {"x509CertificateChain": {"certificates": [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER))
             .decode()} for c in certs]}, "tlogEntries": []}
    else:
        material = {"publicKey": {"hint": _pem_hint(private.public_key())}, "tlogEntries": []}
    sig = private.sign(pae(INTOTO_PAYLOAD_TYPE, payload),
                       ec.ECDSA(_hash_for(private.public_key())))
    bundle = {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material,
              "dsseEnvelope": {"payload": base64.b64encode(payload).decode(),
                               "payloadType": INTOTO_PAYLOAD_TYPE,
                               "signatures": [{"sig": base64.b64encode(sig).decode(),
                                               "keyid": ""}]}}
    return (json.dumps(bundle, indent=2) + "\n").encode()


def identity_token_from_env(identity_token: str | None) -> str:
    """An explicit token, SIGSTORE_ID_TOKEN, or an ambient CI credential; never the
    interactive browser flow (it would hang a CI job)."""
    token = identity_token or os.environ.get("SIGSTORE_ID_TOKEN")
    if token:
        return token
    try:
        from sigstore.oidc import detect_credential

        detected = detect_credential()
    except Exception as exc:
        raise SigningError(f"cannot detect an ambient OIDC credential: {exc}") from exc
    if not detected:
        raise SigningInputError("Sigstore signing needs an OIDC identity token: pass "
                                "--identity-token (or SIGSTORE_ID_TOKEN), or run where "
                                "ambient credentials exist (e.g. GitHub Actions with "
                                "id-token: write)")
    return str(detected)


def _sign_sigstore(payload: bytes, identity_token: str | None, use_staging: bool,
                   trust_config: str | os.PathLike[str] | None) -> bytes:
    token_text = identity_token_from_env(identity_token)
    try:
        from sigstore import dsse
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        if trust_config is not None:
            tc = ClientTrustConfig.from_json(Path(trust_config).read_text())
        else:
            tc = ClientTrustConfig.staging() if use_staging else ClientTrustConfig.production()
        ctx = SigningContext.from_trust_config(tc)
        token = IdentityToken(token_text)
        with ctx.signer(token) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
    except SigningError:
        raise
    except Exception as exc:
        raise SigningError(f"Sigstore signing failed (it needs network access to Fulcio "
                           f"and Rekor and a valid OIDC identity): {exc}") from exc
    return (bundle.to_json() + "\n").encode()


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Envelope:
    """A bundle or bare DSSE envelope, parsed but not trusted."""

    kind: str  # key | certificate | sigstore | unsigned
    payload_type: str
    payload: bytes
    signature: bytes | None
    key_hint: str | None
    chain: tuple[bytes, ...]  # DER certificates, leaf first
    bundle: Mapping[str, Any] | None


def _b64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"malformed bundle: {what} is not base64") from None


def parse_envelope(data: bytes) -> Envelope:
    """A Sigstore bundle with a DSSE envelope, a bare DSSE envelope (``.intoto.jsonl`` style,
    first line), or a bare unsigned Statement. Raises SigningError when it is none of them."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise SigningError(f"larger than {MAX_BUNDLE_BYTES} bytes: not an attestation")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        lines = [x for x in data.splitlines() if x.strip()]
        try:
            doc = json.loads(lines[0]) if lines else None
        except (ValueError, RecursionError):
            doc = None
        if not isinstance(doc, dict):
            raise SigningError("not JSON: not a Sigstore bundle, DSSE envelope or "
                               "in-toto statement") from None
    if not isinstance(doc, dict):
        raise SigningError("not a JSON object")
    if doc.get("_type") == STATEMENT_TYPE:
        return Envelope("unsigned", INTOTO_PAYLOAD_TYPE, statement_bytes(doc), None, None, (),
                        None)
    env = doc.get("dsseEnvelope", doc.get("dsse_envelope"))
    material = doc.get("verificationMaterial", doc.get("verification_material"))
    bundle: Mapping[str, Any] | None = doc
    if env is None and "payload" in doc and "signatures" in doc:
        env, material, bundle = doc, {}, None  # a bare DSSE envelope
    if not isinstance(env, dict) or not isinstance(material, dict):
        raise SigningError("not a Sigstore bundle with a DSSE envelope")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise SigningError("malformed bundle: the DSSE envelope must carry exactly one "
                           "signature")
    payload_type = env.get("payloadType", env.get("payload_type"))
    if not isinstance(payload_type, str):
        raise SigningError("malformed bundle: no payloadType")
    payload = _b64(env.get("payload"), "the payload")
    signature = _b64(sigs[0].get("sig"), "the signature")
    chain: list[bytes] = []
    hint = None
    cert_chain = material.get("x509CertificateChain", material.get("x509_certificate_chain"))
    if isinstance(cert_chain, dict):
        kind = "certificate"
        certs = cert_chain.get("certificates")
        if not isinstance(certs, list) or not certs:
            raise SigningError("malformed bundle: empty certificate chain")
        for c in certs:
            raw = c.get("rawBytes", c.get("raw_bytes")) if isinstance(c, dict) else None
            chain.append(_b64(raw, "a certificate"))
    elif isinstance(material.get("certificate"), dict):
        kind = "sigstore"
        c = material["certificate"]
        chain.append(_b64(c.get("rawBytes", c.get("raw_bytes")), "the certificate"))
    else:
        kind = "key"
        pk = material.get("publicKey", material.get("public_key"))
        h = pk.get("hint") if isinstance(pk, dict) else None
        hint = h if isinstance(h, str) and h else None
    return Envelope(kind, payload_type, payload, signature, hint, tuple(chain), bundle)


def payload_statement(env: Envelope) -> dict[str, Any]:
    if env.payload_type != INTOTO_PAYLOAD_TYPE:
        raise SigningError(f"DSSE payload type {env.payload_type!r} is not "
                           f"{INTOTO_PAYLOAD_TYPE}")
    try:
        stmt = json.loads(env.payload)
    except (ValueError, RecursionError):
        raise SigningError("the DSSE payload is not JSON") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise SigningError("the DSSE payload is not an in-toto Statement v1")
    return stmt


# ----------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class StatementVerification:
    ok: bool
    method: str | None  # key | certificate | sigstore | unsigned
    statement: dict[str, Any] | None  # the payload, only when ok
    identities: tuple[str, ...] = ()
    issuer: str | None = None
    error: str | None = None
    tried: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "method": self.method, "identities": list(self.identities),
                "issuer": self.issuer, "error": self.error, "tried": list(self.tried)}


@dataclass(frozen=True)
class Trust:
    """Who may sign: any of these anchors is enough (as in mlwarden.signing.SignaturePolicy).

    ``identities`` are (identity, issuer) pairs: under ``certificate_chain`` they restrict
    which leaf certificates are accepted; without it they are Sigstore identities, checked
    against ``trust_root`` (a pinned trusted_root.json / client trust config) or, without
    one, Sigstore's production trust root."""

    public_keys: tuple[Path, ...] = ()
    certificate_chain: tuple[Path, ...] = ()
    identities: tuple[tuple[str, str | None], ...] = ()
    trust_root: Path | None = None
    use_staging: bool = False

    @property
    def empty(self) -> bool:
        return not (self.public_keys or self.certificate_chain or self.identities)


def verify_statement(data: bytes, trust: Trust) -> StatementVerification:
    """Verify a bundle against ``trust``; the statement comes back only if a trusted signer
    signed it. Never raises for a bad bundle (ok=False with the reasons)."""
    try:
        env = parse_envelope(data)
    except SigningError as exc:
        return StatementVerification(False, None, None, error=str(exc))
    if env.kind == "unsigned":
        return StatementVerification(False, "unsigned", None,
                                     error="the record is not signed")
    if trust.empty:
        return StatementVerification(False, env.kind, None,
                                     error="no trusted key, CA or identity is configured")
    reasons: list[str] = []
    attempts: list[tuple[str, Any]] = [("key", k) for k in trust.public_keys]
    if trust.certificate_chain:
        attempts += [("certificate", i) for i in (trust.identities or (None,))]
    else:
        attempts += [("sigstore", i) for i in trust.identities]
    for mode, anchor in attempts:
        try:
            if mode == "key":
                res = _verify_key(env, Path(anchor))
            elif mode == "certificate":
                res = _verify_certificate(env, trust.certificate_chain, anchor)
            else:
                res = _verify_sigstore(env, data, anchor, trust)
        except SigningError as exc:
            reasons.append(str(exc))
            continue
        return res
    return StatementVerification(False, env.kind, None,
                                 error="no trusted signer accepted the signature",
                                 tried=tuple(reasons))


def _verify_key(env: Envelope, pub_path: Path) -> StatementVerification:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    if env.kind != "key":
        raise SigningError(f"{pub_path}: the record was signed with a {env.kind} signer, "
                           "not a bare key")
    public = load_ec_public_key(pub_path)
    if env.key_hint is not None and env.key_hint != _pem_hint(public):
        raise SigningError(f"{pub_path}: signed with another key (hint mismatch)")
    assert env.signature is not None
    try:
        public.verify(env.signature, pae(env.payload_type, env.payload),
                      ec.ECDSA(_hash_for(public)))
    except InvalidSignature:
        raise SigningError(f"{pub_path}: invalid signature") from None
    return StatementVerification(True, "key", payload_statement(env))


def _verify_certificate(env: Envelope, chain_paths: Sequence[Path],
                        ident: tuple[str, str | None] | None) -> StatementVerification:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from OpenSSL import crypto

    if env.kind != "certificate":
        raise SigningError(f"the record was signed with a {env.kind} signer, not a "
                           "certificate chain")
    try:
        leaf = x509.load_der_x509_certificate(env.chain[0])
        inter = [x509.load_der_x509_certificate(c) for c in env.chain[1:]]
    except ValueError:
        raise SigningError("malformed bundle: unreadable certificate") from None
    store = crypto.X509Store()
    for c in _certs(chain_paths):
        store.add_cert(crypto.X509.from_cryptography(c))
    store.set_time(leaf.not_valid_before_utc)  # validity at signing time, as model_signing
    try:
        crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf),
                                [crypto.X509.from_cryptography(c) for c in inter]
                                ).verify_certificate()
    except crypto.X509StoreContextError as exc:
        raise SigningError(f"the signing certificate does not chain to the trusted CA: "
                           f"{exc}") from None
    if not _can_sign(leaf):
        raise SigningError("the signing certificate is not for digital signatures")
    from mlwarden.signing.bundle import certificate_identities, certificate_issuer

    names = tuple(certificate_identities(leaf))
    issuer = certificate_issuer(leaf)
    if ident is not None:
        want, want_issuer = ident
        if want not in names:
            raise SigningError(f"signer identity mismatch: certificate names "
                               f"{', '.join(names) or 'nobody'}, expected {want}")
        if want_issuer is not None and issuer != want_issuer:
            raise SigningError(f"signer issuer mismatch: certificate says "
                               f"{issuer or 'none'}, expected {want_issuer}")
    public = leaf.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise SigningError("the signing certificate does not hold an EC key")
    assert env.signature is not None
    try:
        public.verify(env.signature, pae(env.payload_type, env.payload),
                      ec.ECDSA(_hash_for(public)))
    except InvalidSignature:
        raise SigningError("invalid signature") from None
    return StatementVerification(True, "certificate", payload_statement(env), names, issuer)


def _can_sign(cert: Any) -> bool:
    from cryptography import x509

    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        return False


def _verify_sigstore(env: Envelope, data: bytes, ident: tuple[str, str | None],
                     trust: Trust) -> StatementVerification:
    identity, issuer = ident
    if env.kind != "sigstore":
        raise SigningError(f"the record was signed with a {env.kind} signer, not Sigstore")
    if issuer is None:
        raise SigningError(f"Sigstore identity {identity} needs an issuer")
    try:
        from sigstore.models import Bundle, ClientTrustConfig, TrustedRoot
        from sigstore.verify import Verifier, policy
    except ImportError as exc:  # pragma: no cover - sigstore is a dependency
        raise SigningError(f"sigstore is not installed: {exc}") from None
    try:
        if trust.trust_root is not None:
            text = trust.trust_root.read_text()
            media = json.loads(text).get("mediaType", "")
            root = ClientTrustConfig.from_json(text).trusted_root \
                if "clienttrustconfig" in media else TrustedRoot.from_file(str(trust.trust_root))
            verifier = Verifier(trusted_root=root)
        else:
            verifier = Verifier.staging() if trust.use_staging else Verifier.production()
    except Exception as exc:
        where = "the pinned trust root" if trust.trust_root else \
            "Sigstore's trust root (online; pin one for offline use)"
        raise SigningError(f"cannot load {where}: {exc}") from None
    try:
        bundle = Bundle.from_json(data)
        payload_type, payload = verifier.verify_dsse(
            bundle, policy.Identity(identity=identity, issuer=issuer))
    except Exception as exc:
        raise SigningError(f"Sigstore verification failed for {identity}: {exc}") from None
    checked = Envelope("sigstore", payload_type, payload, None, None, env.chain, env.bundle)
    leaf_names: tuple[str, ...] = (identity,)
    return StatementVerification(True, "sigstore", payload_statement(checked), leaf_names,
                                 issuer)


def unverified_statement(data: bytes) -> dict[str, Any]:
    """The statement inside a bundle without checking any signature: for indexing (trace),
    never for trust decisions."""
    return payload_statement(parse_envelope(data))
