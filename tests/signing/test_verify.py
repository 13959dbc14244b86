"""Tampering, identity checks, sharded signatures, the guard's policy API and clean errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import model_signing
import pytest
from click.testing import CliRunner

from mlwarden.cli.main import cli
from mlwarden.signing import (
    Identity,
    SignaturePolicy,
    SigningInputError,
    sign_model,
    verify_model_signature,
    verify_signature,
)

SIGNER = "release@example.com"
ISSUER = "https://accounts.example.com"
SIGSTORE_ROOT = Path(__import__("sigstore").__file__).parent / "_store" / \
    "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"


def mw(*args: object) -> tuple[int, str]:
    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.mark.parametrize("tamper", ["modify", "add", "delete", "rename"])
def test_any_change_to_the_model_fails(model: Path, pki, tmp_path: Path, tamper: str) -> None:
    sig = tmp_path / "m.sig"
    sign_model(model, sig, key=pki.key)
    assert verify_signature(model, sig, public_key=pki.pub).ok
    if tamper == "modify":
        (model / "config.json").write_text('{"model_type": "gpt2"}')
    elif tamper == "add":
        (model / "extra.py").write_text("print('hi')")
    elif tamper == "delete":
        (model / "sub" / "tokenizer.json").unlink()
    else:
        (model / "config.json").rename(model / "config2.json")
    res = verify_signature(model, sig, public_key=pki.pub)
    assert not res.ok
    assert "mismatch" in (res.error or "")


def _rewrite(sig: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(sig.read_text())
    fn(doc)
    sig.write_text(json.dumps(doc))


def test_tampered_signature_fails(model: Path, pki, tmp_path: Path) -> None:
    sig = tmp_path / "m.sig"
    sign_model(model, sig, key=pki.key)

    def flip_sig(doc: dict) -> None:
        raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
        raw[10] ^= 0x01
        doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()

    def swap_digest(doc: dict) -> None:
        st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        st["predicate"]["resources"][0]["digest"] = "0" * 64
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()

    for fn in (flip_sig, swap_digest):
        bad = tmp_path / f"{fn.__name__}.sig"
        bad.write_bytes(sig.read_bytes())
        _rewrite(bad, fn)
        res = verify_signature(model, bad, public_key=pki.pub)
        assert not res.ok, fn.__name__
    # Malformed: exit 1 with a clear message, never a traceback.
    (tmp_path / "junk.sig").write_bytes(b"\x00\x01not json")
    code, out = mw("verify-signature", model, "--signature", tmp_path / "junk.sig",
                   "--public-key", pki.pub)
    assert code == 1 and "malformed signature" in out and "Traceback" not in out
    (tmp_path / "empty.sig").write_text("{}")
    code, out = mw("verify-signature", model, "--signature", tmp_path / "empty.sig",
                   "--public-key", pki.pub)
    assert code == 1 and "malformed signature" in out


def test_wrong_key_and_wrong_mode_fail(model: Path, pki, tmp_path: Path) -> None:
    sig = tmp_path / "m.sig"
    sign_model(model, sig, key=pki.key)
    assert not verify_signature(model, sig, public_key=pki.other_pub).ok
    res = verify_signature(model, sig, cert_chain=[pki.root])
    assert not res.ok and "not a certificate" in (res.error or "")


def test_identity_and_chain_are_enforced(model: Path, pki, tmp_path: Path) -> None:
    good = tmp_path / "good.sig"
    sign_model(model, good, key=pki.leaf_key, certificate=pki.leaf, chain=[pki.intermediate])
    res = verify_signature(model, good, cert_chain=[pki.root], identity=SIGNER, issuer=ISSUER)
    assert res.ok and res.identities == (SIGNER,) and res.issuer == ISSUER
    # Same CA, another person: the chain is fine, the identity is not.
    res = verify_signature(model, good, cert_chain=[pki.root], identity="boss@example.com")
    assert not res.ok and "identity mismatch" in (res.error or "")
    res = verify_signature(model, good, cert_chain=[pki.root], identity=SIGNER,
                           issuer="https://evil.example")
    assert not res.ok and "issuer mismatch" in (res.error or "")
    # A certificate for someone else under the trusted CA.
    mallory = tmp_path / "mallory.sig"
    sign_model(model, mallory, key=pki.wrong_leaf_key, certificate=pki.wrong_leaf,
               chain=[pki.intermediate])
    assert not verify_signature(model, mallory, cert_chain=[pki.root], identity=SIGNER).ok
    # An unrelated CA.
    res = verify_signature(model, good, cert_chain=[pki.other_root], identity=SIGNER)
    assert not res.ok
    code, out = mw("verify-signature", model, "--signature", good, "--cert-chain", pki.root,
                   "--identity", "boss@example.com")
    assert code == 1 and "identity mismatch" in out


def test_sharded_signature_from_library_verifies(model: Path, pki, tmp_path: Path) -> None:
    """model_signing's own guess fails here (shard size read back as a float)."""
    sig = tmp_path / "sharded.sig"
    hc = model_signing.hashing.Config().use_shard_serialization(shard_size=1000)
    (model_signing.signing.Config().use_elliptic_key_signer(private_key=pki.key)
     .set_hashing_config(hc).sign(model, sig))
    res = verify_signature(model, sig, public_key=pki.pub)
    assert res.ok, res.error
    assert res.serialization == "shards/sha256/1000" and res.resources == 8
    # One byte in the third shard of the weights.
    w = model / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[2500] ^= 0xFF
    w.write_bytes(bytes(data))
    res = verify_signature(model, sig, public_key=pki.pub)
    assert not res.ok and "model.safetensors:2000:3000" in (res.error or "")


def test_sharded_round_trip_and_other_hashes(model: Path, pki, tmp_path: Path) -> None:
    for i, kw in enumerate([{"shard_size": 4096}, {"hash_algorithm": "blake2"},
                            {"hash_algorithm": "blake3"}]):
        sig = tmp_path / f"{i}.sig"
        sign_model(model, sig, key=pki.key, **kw)  # type: ignore[arg-type]
        assert verify_signature(model, sig, public_key=pki.pub).ok, kw


def test_ignored_paths_are_reported(model: Path, pki, tmp_path: Path) -> None:
    sig = tmp_path / "m.sig"
    sign_model(model, sig, key=pki.key, ignore_paths=["config.json"])
    (model / "config.json").write_text("changed, and not covered")
    res = verify_signature(model, sig, public_key=pki.pub)
    assert res.ok and res.unsigned == ("config.json",)


def test_sigstore_bundle_with_pinned_trust_root_fails_closed(model: Path, pki,
                                                            tmp_path: Path) -> None:
    """A bundle that claims to be Sigstore but was not issued by Fulcio is refused offline."""
    sig = tmp_path / "m.sig"
    sign_model(model, sig, key=pki.leaf_key, certificate=pki.leaf, chain=[pki.intermediate])
    doc = json.loads(sig.read_text())
    leaf = doc["verificationMaterial"].pop("x509CertificateChain")["certificates"][0]
    doc["verificationMaterial"]["certificate"] = leaf
    fake = tmp_path / "fake-sigstore.sig"
    fake.write_text(json.dumps(doc))
    res = verify_signature(model, fake, identity=SIGNER, issuer=ISSUER,
                           trust_root=SIGSTORE_ROOT)
    assert not res.ok and res.method == "sigstore"
    code, out = mw("verify-signature", model, "--signature", fake, "--identity", SIGNER,
                   "--issuer", ISSUER, "--trust-root", SIGSTORE_ROOT)
    assert code == 1 and "Traceback" not in out


def test_sigstore_signing_offline_is_a_clean_error(model: Path, monkeypatch) -> None:
    monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
    code, out = mw("sign", model, "--sigstore")
    assert code in (1, 4) and "Traceback" not in out and "OIDC" in out


def test_policy_api_for_the_guard(model: Path, pki, tmp_path: Path) -> None:
    sign_model(model, None, key=pki.leaf_key, certificate=pki.leaf, chain=[pki.intermediate])
    policy = SignaturePolicy.from_mapping(
        {"certificate-chain": [str(pki.root)],
         "identities": [{"identity": "nobody@example.com", "issuer": ISSUER},
                        {"identity": SIGNER, "issuer": ISSUER}]}, base=tmp_path)
    res = verify_model_signature(model, policy)
    assert res.ok and res.identities == (SIGNER,)
    strict = SignaturePolicy(certificate_chain=(pki.root,),
                             identities=(Identity("nobody@example.com"),))
    res = verify_model_signature(model, strict)
    assert not res.ok and any("identity mismatch" in t for t in res.tried)
    keys = SignaturePolicy(public_keys=(pki.other_pub, pki.pub))
    assert not verify_model_signature(model, keys).ok  # certificate signature, bare keys
    (model.parent / "model.sig").unlink()
    assert not verify_model_signature(model, policy).ok
    assert verify_model_signature(model, SignaturePolicy(require=False)).ok
    with pytest.raises(SigningInputError):
        SignaturePolicy.from_mapping({"public-key": "typo"})


def test_cli_bad_input_is_exit_4(model: Path, pki, tmp_path: Path) -> None:
    cases = [
        ("sign", model, "--key", tmp_path / "missing.pem"),
        ("sign", tmp_path / "no-model", "--key", pki.key),
        ("sign", model),
        ("sign", model, "--key", pki.pub),  # a public key is not a private key
        ("sign", model, "--key", pki.key, "--cert", pki.wrong_leaf),  # cert for another key
        ("verify-signature", model, "--signature", tmp_path / "none.sig", "--public-key",
         pki.pub),
        ("verify-signature", tmp_path / "no-model", "--public-key", pki.pub),
        ("verify-signature", model, "--signature", pki.pub),  # no trust anchor given
        ("verify-signature", model, "--public-key", pki.pub, "--identity", SIGNER),
    ]
    for args in cases:
        code, out = mw(*args)
        assert code == 4, (args, out)
        assert "Traceback" not in out and "error:" in out, (args, out)
