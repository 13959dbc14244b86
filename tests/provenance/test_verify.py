"""`mlwarden verify-provenance`: the trained model verifies; swapped weights, an added file,
a dataset outside the allowed set, another commit or source, a forged or untrusted builder,
an unsigned or re-signed record are each refused with their rule."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from corpus.pki import ISSUER, SIGNER, Pki
from mlwarden.signing.statement import sign_statement, unverified_statement
from provenance.support import BUILDER, SOURCE, Trained, mlwarden, run_env


def verify(model: Path, record: Path, keys: Pki, *extra: str, builder: str = BUILDER,
           anchor: tuple[str, ...] | None = None) -> tuple[int, dict[str, Any], str]:
    args = ["verify-provenance", str(model), "--provenance", str(record), "--builder", builder,
            "--source", SOURCE, "--source-branch", "main", *(anchor or ("--public-key",
                                                                        str(keys.pub))),
            "--format", "json", *extra]
    res = mlwarden(args, run_env(record.parent / ".hf"))
    doc = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    return res.returncode, doc, res.stderr


def rules(doc: dict[str, Any]) -> set[str]:
    return {f["rule"] for r in doc.get("files", []) for f in r["findings"]}


def resign(record: Path, out: Path, key: Path, change: Any) -> Path:
    stmt = unverified_statement(record.read_bytes())
    change(stmt)
    out.write_bytes(sign_statement(stmt, key=str(key)))
    return out


def dataset_digest(trained: Trained) -> str:
    return hashlib.sha256((trained.workspace / "data" / "train.jsonl").read_bytes()).hexdigest()


def test_the_trained_model_verifies(trained: Trained, keys: Pki) -> None:
    code, doc, err = verify(trained.model, trained.record, keys, "--dataset-digest",
                            dataset_digest(trained), "--source-commit", trained.commit[:10])
    assert code == 0, err
    assert "PASSED" in err and "SLSA Build L1" in err
    assert rules(doc) == {"provenance-verified"}
    # The record inside the model is found without --provenance, and a builder id
    # without @ref accepts any ref of that workflow (as slsa-verifier).
    res = mlwarden(["verify-provenance", str(trained.model), "--builder",
                    BUILDER.split("@")[0], "--source", "https://github.com/acme/train.git",
                    "--public-key", str(keys.pub)], run_env(trained.hf_home))
    assert res.returncode == 0, res.stderr


def test_swapped_weights_are_refused(model_copy: Path, keys: Pki) -> None:
    w = model_copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    code, doc, _ = verify(model_copy, model_copy / "provenance.json", keys)
    assert code == 1
    assert rules(doc) == {"provenance-subject-mismatch"}
    bad = [r["path"] for r in doc["files"] if r["verdict"] != "clean"]
    assert bad == [f"{model_copy}/model.safetensors"]


def test_an_added_file_is_refused(model_copy: Path, keys: Pki) -> None:
    (model_copy / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    code, doc, _ = verify(model_copy, model_copy / "provenance.json", keys)
    assert code == 1 and rules(doc) == {"provenance-not-a-subject"}


def test_a_different_dataset_is_refused(trained: Trained, keys: Pki, tmp_path: Path) -> None:
    other = hashlib.sha256(b"the approved dataset is another one").hexdigest()
    code, doc, _ = verify(trained.model, trained.record, keys, "--dataset-digest", other)
    assert code == 1 and rules(doc) == {"provenance-dataset"}
    # A record whose dataset was swapped, re-signed by the trusted key, is refused as well.
    rec = resign(trained.record, tmp_path / "other-data.json", keys.key,
                 lambda s: next(d for d in s["predicate"]["buildDefinition"]
                                ["resolvedDependencies"] if d["annotations"]["mlwarden:kind"]
                                == "dataset")["digest"].update(sha256=other))
    code, doc, _ = verify(trained.model, rec, keys, "--dataset-digest", dataset_digest(trained))
    assert code == 1 and rules(doc) == {"provenance-dataset"}


def test_a_different_commit_or_source_is_refused(trained: Trained, keys: Pki,
                                                 tmp_path: Path) -> None:
    code, doc, _ = verify(trained.model, trained.record, keys, "--source-commit", "0123456789")
    assert code == 1 and rules(doc) == {"provenance-source"}
    res = mlwarden(["verify-provenance", str(trained.model), "--builder", BUILDER, "--source",
                    SOURCE, "--source-tag", "v1", "--public-key", str(keys.pub)],
                   run_env(trained.hf_home))
    assert res.returncode == 1 and "expected refs/tags/v1" in res.stdout

    def other_commit(s: dict[str, Any]) -> None:
        src = next(d for d in s["predicate"]["buildDefinition"]["resolvedDependencies"]
                   if d["annotations"]["mlwarden:kind"] == "source")
        src["digest"]["gitCommit"] = "f" * 40

    rec = resign(trained.record, tmp_path / "other-commit.json", keys.key,
                 other_commit)
    code, doc, _ = verify(trained.model, rec, keys, "--source-commit", trained.commit)
    assert code == 1 and rules(doc) == {"provenance-source"}
    res = mlwarden(["verify-provenance", str(trained.model), "--builder", BUILDER, "--source",
                    "github.com/evil/train", "--public-key", str(keys.pub)],
                   run_env(trained.hf_home))
    assert res.returncode == 1 and "built from github.com/acme/train" in res.stdout


def test_a_forged_builder_is_refused(trained: Trained, keys: Pki, tmp_path: Path) -> None:
    # 1. Honest record, but not from the builder the consumer trusts.
    code, doc, _ = verify(trained.model, trained.record, keys,
                          builder="https://github.com/acme/train/.github/workflows/other.yml")
    assert code == 1 and rules(doc) == {"provenance-builder"}
    # 2. The builder id edited in place: the signature no longer covers the payload.
    forged_env = json.loads(trained.record.read_text())
    stmt = json.loads(base64.b64decode(forged_env["dsseEnvelope"]["payload"]))
    stmt["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    forged_env["dsseEnvelope"]["payload"] = base64.b64encode(
        json.dumps(stmt).encode()).decode()
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(forged_env))
    code, doc, _ = verify(trained.model, edited, keys, builder="https://evil.example/builder")
    assert code == 1 and rules(doc) == {"provenance-signature"}
    # 3. A record claiming the trusted builder, signed by someone else's key.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    mallory = tmp_path / "mallory.pem"
    mallory.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    rec = resign(trained.record, tmp_path / "mallory.json", mallory, lambda s: None)
    code, doc, _ = verify(trained.model, rec, keys)
    assert code == 1 and rules(doc) == {"provenance-signature"}


def test_unsigned_and_malformed_records_are_refused(trained: Trained, keys: Pki,
                                                    tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(unverified_statement(trained.record.read_bytes())))
    code, doc, _ = verify(trained.model, bare, keys)
    assert code == 1 and rules(doc) == {"provenance-unsigned"}
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    code, doc, _ = verify(trained.model, junk, keys)
    assert code == 1 and rules(doc) == {"provenance-signature"}
    code, _, err = verify(trained.model, tmp_path / "missing.json", keys)
    assert code == 4 and "no such provenance file" in err and "Traceback" not in err
    res = mlwarden(["verify-provenance", str(trained.model), "--builder", BUILDER],
                   run_env(tmp_path))
    assert res.returncode == 4 and "trust anchor" in res.stderr


def test_certificate_signed_record_with_identity(trained: Trained, keys: Pki,
                                                 tmp_path: Path) -> None:
    rec = tmp_path / "cert.json"
    rec.write_bytes(sign_statement(unverified_statement(trained.record.read_bytes()),
                                   key=str(keys.leaf_key), certificate=str(keys.leaf),
                                   chain=[str(keys.intermediate)]))
    ok = ("--cert-chain", str(keys.root), "--identity", SIGNER, "--issuer", ISSUER)
    code, doc, err = verify(trained.model, rec, keys, anchor=ok)
    assert code == 0, err
    code, doc, _ = verify(trained.model, rec, keys, anchor=(
        "--cert-chain", str(keys.root), "--identity", "mallory@example.com"))
    assert code == 1 and rules(doc) == {"provenance-signature"}
    code, doc, _ = verify(trained.model, rec, keys, anchor=("--cert-chain",
                                                            str(keys.other_root)))
    assert code == 1 and rules(doc) == {"provenance-signature"}


def local_trusted_root(pki: Pki, path: Path) -> Path:
    """A Sigstore trusted_root.json whose CA is the test's private CA (and throwaway log
    keys): enough for sigstore-python to load it and judge bundles offline."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def der(p: Path) -> str:
        cert = x509.load_pem_x509_certificate(p.read_bytes())
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    spki = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    log = {"baseUrl": "https://log.invalid", "hashAlgorithm": "SHA2_256",
           "publicKey": {"rawBytes": base64.b64encode(spki).decode(),
                         "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                         "validFor": {"start": "2020-01-01T00:00:00Z"}},
           "logId": {"keyId": base64.b64encode(hashlib.sha256(spki).digest()).decode()}}
    path.write_text(json.dumps({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log], "ctlogs": [log], "timestampAuthorities": [],
        "certificateAuthorities": [{
            "subject": {"organization": "test", "commonName": "test"},
            "uri": "https://fulcio.invalid",
            "certChain": {"certificates": [{"rawBytes": der(pki.intermediate)},
                                           {"rawBytes": der(pki.root)}]},
            "validFor": {"start": dt.datetime(2020, 1, 1).strftime("%Y-%m-%dT%H:%M:%SZ")}}]}))
    return path


def test_keyless_verification_offline_refusals(trained: Trained, keys: Pki,
                                               tmp_path: Path) -> None:
    """Keyless records are judged by sigstore-python against a pinned trust root. Offline
    we can build the certificate part (a local CA in the trust root) but not a transparency
    log entry: such a bundle, and a key-signed record offered as keyless, are refused."""
    root = local_trusted_root(keys, tmp_path / "trusted_root.json")
    bundle = json.loads(sign_statement(unverified_statement(trained.record.read_bytes()),
                                       key=str(keys.leaf_key), certificate=str(keys.leaf),
                                       chain=[str(keys.intermediate)]))
    vm = bundle["verificationMaterial"]
    vm["certificate"] = vm.pop("x509CertificateChain")["certificates"][0]
    keyless = tmp_path / "keyless.json"
    keyless.write_text(json.dumps(bundle))
    anchor = ("--identity", SIGNER, "--issuer", ISSUER, "--trust-root", str(root))
    code, doc, _ = verify(trained.model, keyless, keys, anchor=anchor)
    assert code == 1 and rules(doc) == {"provenance-signature"}
    msg = " ".join(f["message"] for r in doc["files"] for f in r["findings"])
    assert "log entry" in msg  # sigstore-python's own refusal, not a parse failure
    code, doc, _ = verify(trained.model, trained.record, keys, anchor=anchor)
    assert code == 1 and "not Sigstore" in json.dumps(doc)
    res = mlwarden(["verify-provenance", str(trained.model), "--builder", BUILDER,
                    "--identity", SIGNER], run_env(tmp_path))
    assert res.returncode == 4 and "--issuer" in res.stderr


@pytest.mark.parametrize("fmt", ["sarif", "table"])
def test_report_formats(model_copy: Path, keys: Pki, fmt: str) -> None:
    (model_copy / "extra.py").write_text("import os\n")
    res = mlwarden(["verify-provenance", str(model_copy), "--builder", BUILDER, "--source",
                    SOURCE, "--public-key", str(keys.pub), "--format", fmt],
                   run_env(model_copy.parent))
    assert res.returncode == 1
    if fmt == "sarif":
        sarif = json.loads(res.stdout)
        assert sarif["runs"][0]["results"][0]["ruleId"] == "provenance-not-a-subject"
    else:
        assert "provenance-not-a-subject" in res.stdout
