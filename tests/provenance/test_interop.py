"""Interop: the provenance of the trained model, checked with other people's code.

* in-toto-attestation: the Statement validates, the predicate parses strictly into the
  official SLSA Provenance v1 protobuf;
* sigstore-python: its DSSE verification accepts the envelope, its SLSA v1 model parses the
  predicate;
* model_signing: its key and certificate verifiers accept our signed statements (the part
  of its format that overlaps: the Sigstore bundle and DSSE envelope), and we accept a
  statement signed by model_signing's signer;
* the SLSA v1 schema accepts the record and rejects broken ones.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from corpus.pki import Pki
from mlwarden.provenance.record import schema_errors
from mlwarden.signing.statement import Trust, sign_statement, unverified_statement, verify_statement
from provenance.support import Trained


@pytest.fixture(scope="module")
def stmt(trained: Trained) -> dict:
    return unverified_statement(trained.record.read_bytes())


def test_in_toto_attestation_validates_statement_and_predicate(stmt: dict) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    pb = json_format.ParseDict(stmt, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()
    for s in pb.subject:
        ResourceDescriptor.copy_from_pb(s).validate()
    prov = json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance(),
                                 ignore_unknown_fields=False)
    assert prov.build_definition.build_type == "https://mlwarden.dev/attest/training/v1"
    assert prov.run_details.builder.id.startswith("https://github.com/acme/train/")
    kinds = {d.annotations["mlwarden:kind"] for d in prov.build_definition.resolved_dependencies}
    assert {"source", "dataset", "config", "base-model", "distribution"} <= kinds
    for d in prov.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(d).validate()
    assert prov.run_details.metadata.started_on.seconds > 0


def test_sigstore_library_verifies_the_envelope(trained: Trained, keys: Pki, stmt: dict) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from sigstore import dsse
    from sigstore.dsse._predicate import SLSAPredicateV1_0
    from sigstore.errors import VerificationError

    bundle = json.loads(trained.record.read_text())
    env = dsse.Envelope._from_json(json.dumps(bundle["dsseEnvelope"]))
    pub = load_pem_public_key(keys.pub.read_bytes())
    payload = dsse._verify(pub, env)  # type: ignore[arg-type]
    assert json.loads(payload) == stmt
    dsse.Statement(payload)  # sigstore's own in-toto Statement model accepts it
    SLSAPredicateV1_0.model_validate(stmt["predicate"])
    other = load_pem_public_key(keys.other_pub.read_bytes())
    with pytest.raises(VerificationError):
        dsse._verify(other, env)  # type: ignore[arg-type]


def test_model_signing_verifiers_accept_our_bundles(trained: Trained, keys: Pki, stmt: dict,
                                                    tmp_path: Path) -> None:
    from model_signing._signing import sign_certificate, sign_ec_key, sign_sigstore_pb

    sig = sign_sigstore_pb.Signature.read(trained.record)
    ptype, payload = sign_ec_key.Verifier(keys.pub)._verify_signed_content(sig)
    assert ptype == "application/vnd.in-toto+json" and json.loads(payload) == stmt
    with pytest.raises(Exception):
        sign_ec_key.Verifier(keys.other_pub)._verify_signed_content(sig)
    cert_rec = tmp_path / "cert.json"
    cert_rec.write_bytes(sign_statement(stmt, key=str(keys.leaf_key),
                                        certificate=str(keys.leaf),
                                        chain=[str(keys.intermediate)]))
    ptype, payload = sign_certificate.Verifier([keys.root])._verify_signed_content(
        sign_sigstore_pb.Signature.read(cert_rec))
    assert json.loads(payload) == stmt


def test_we_accept_a_statement_signed_by_model_signing(keys: Pki, stmt: dict,
                                                       tmp_path: Path) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    from model_signing._signing import sign_ec_key

    pb = json_format.ParseDict(stmt, statement_pb2.Statement())
    signature = sign_ec_key.Signer(keys.key).sign(
        SimpleNamespace(statement=Statement.copy_from_pb(pb)))  # type: ignore[arg-type]
    out = tmp_path / "by-model-signing.json"
    signature.write(out)
    res = verify_statement(out.read_bytes(), Trust(public_keys=(keys.pub,)))
    assert res.ok and res.statement == json.loads(json_format.MessageToJson(pb))
    assert not verify_statement(out.read_bytes(), Trust(public_keys=(keys.other_pub,))).ok


def test_slsa_schema_accepts_the_record_and_rejects_broken_ones(stmt: dict) -> None:
    assert schema_errors(stmt) == []
    broken = json.loads(json.dumps(stmt))
    del broken["predicate"]["runDetails"]["builder"]["id"]
    assert any("id" in e for e in schema_errors(broken))
    broken = json.loads(json.dumps(stmt))
    broken["predicate"]["runDetails"]["metadata"]["startedOn"] = "yesterday"
    assert any("startedOn" in e for e in schema_errors(broken))
    broken = json.loads(json.dumps(stmt))
    broken["subject"][0]["digest"]["sha256"] = "XYZ"
    assert schema_errors(broken)
    broken = json.loads(json.dumps(stmt))
    broken["predicate"]["buildDefinition"]["resolvedDependencies"].append({"name": "nothing"})
    assert schema_errors(broken)


def test_envelope_tampering_is_detected_by_every_verifier(trained: Trained, keys: Pki,
                                                          tmp_path: Path) -> None:
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    bundle = json.loads(trained.record.read_text())
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload["subject"][0]["digest"]["sha256"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    assert not verify_statement(bad.read_bytes(), Trust(public_keys=(keys.pub,))).ok
    with pytest.raises(Exception):
        sign_ec_key.Verifier(keys.pub)._verify_signed_content(sign_sigstore_pb.Signature.read(bad))
