"""ML-BOMs: CycloneDX 1.6 validates with the strict schema validator and carries files,
model card, datasets, base model, verdicts and libraries; SPDX 3.0.1 has the AI and Dataset
profile elements and reads back."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlwarden
from mlwarden.cli.main import cli
from mlwarden.sbom import SbomInputError, build_sbom

COMMIT = "0123456789abcdef0123456789abcdef01234567"
README = """---
license: apache-2.0
language: en
datasets:
- rajpurkar/squad
- nyu-mll/glue
base_model: google-bert/bert-base-uncased
pipeline_tag: question-answering
metrics:
- exact_match
- f1
model-index:
- name: tiny-qa
  results:
  - task: {type: question-answering, name: Question Answering}
    dataset: {type: rajpurkar/squad, name: SQuAD, split: validation}
    metrics:
    - {type: f1, value: 88.5, name: F1}
    - {type: exact_match, value: 81.2}
---
# tiny-qa
A tiny model for tests.
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("bom") / "tiny-qa"
    d.mkdir()
    (d / "README.md").write_text(README)
    (d / "config.json").write_text(json.dumps({"model_type": "bert",
                                               "architectures": ["BertForQuestionAnswering"]}))
    save_file({"w": torch.zeros(4, 4)}, str(d / "model.safetensors"))
    # Harmless "malicious" pickle: it would only touch a marker in a temp dir, and it is
    # never loaded; the scanner must mark it malicious.
    marker = tmp_path_factory.mktemp("marker") / "pwned"
    (d / "extra.pkl").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode()
                                  + b"'\ntR.")
    return d


def _cdx(model_dir: Path, **kw: object) -> dict:
    text = build_sbom(model_dir, name="acme/tiny-qa", commit=COMMIT, **kw)  # type: ignore[arg-type]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    return json.loads(text)


def test_cyclonedx_model_files_card_datasets_verdicts(model_dir: Path) -> None:
    doc = _cdx(model_dir)
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert model["purl"] == f"pkg:huggingface/acme/tiny-qa@{COMMIT}"
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    # Every file, with its real sha256 and verdict.
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {"README.md", "config.json", "model.safetensors", "extra.pkl"}
    for name, comp in files.items():
        assert comp["type"] == "file"
        want = hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        assert comp["hashes"] == [{"alg": "SHA-256", "content": want}]
    props = {c["name"]: {p["name"]: p["value"] for p in c["properties"]}
             for c in model["components"]}
    assert props["extra.pkl"]["mlwarden:verdict"] == "malicious"
    assert props["model.safetensors"]["mlwarden:verdict"] == "clean"
    top = {p["name"]: p["value"] for p in model["properties"]}
    assert top["mlwarden:verdict"] == "malicious"
    assert top["mlwarden:scanner-version"] == mlwarden.__version__
    # Model card from the README front matter.
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "question-answering"
    assert card["modelParameters"]["architectureFamily"] == "bert"
    assert card["modelParameters"]["modelArchitecture"] == "BertForQuestionAnswering"
    assert card["modelParameters"]["datasets"] == [{"ref": "dataset:rajpurkar/squad"},
                                                   {"ref": "dataset:nyu-mll/glue"}]
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    assert {"type": "f1", "value": "88.5", "slice": "SQuAD (validation)"} in metrics
    assert {"type": "exact_match", "value": "81.2", "slice": "SQuAD (validation)"} in metrics
    # Datasets as data components, base model as a pedigree ancestor.
    data = {c["name"]: c for c in doc["components"] if c["type"] == "data"}
    assert set(data) == {"rajpurkar/squad", "nyu-mll/glue"}
    assert data["rajpurkar/squad"]["data"][0]["type"] == "dataset"
    anc = model["pedigree"]["ancestors"]
    assert anc[0]["purl"] == "pkg:huggingface/google-bert/bert-base-uncased"
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert set(deps["model"]) == {"dataset:rajpurkar/squad", "dataset:nyu-mll/glue"}


def test_environment_libraries_have_versions_purls_and_record_hashes(model_dir: Path) -> None:
    doc = _cdx(model_dir, environment=True)
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    version = md.version("pyyaml")
    y = libs["pyyaml"]
    assert y["version"] == version and y["purl"] == f"pkg:pypi/pyyaml@{version}"
    props = {p["name"]: p["value"] for p in y["properties"]}
    record = md.distribution("pyyaml").read_text("RECORD")
    assert props["mlwarden:record-sha256"] == hashlib.sha256(record.encode()).hexdigest()
    assert "cyclonedx-python-lib" in libs and "torch" in libs


def test_lockfiles_give_hashed_libraries(model_dir: Path, tmp_path: Path) -> None:
    h1, h2 = "a" * 64, "b" * 64
    req = tmp_path / "requirements.txt"
    req.write_text(f"requests==2.32.3 --hash=sha256:{h1} --hash=sha256:{h2}\n")
    uv = tmp_path / "uv.lock"
    uv.write_text(
        'version = 1\n\n[[package]]\nname = "numpy"\nversion = "2.1.0"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
        f'sdist = {{ url = "https://x/numpy-2.1.0.tar.gz", hash = "sha256:{h1}" }}\n')
    doc = _cdx(model_dir, lockfiles=[req, uv])
    libs = {c["name"]: c for c in doc["components"] if c["type"] == "library"}
    assert libs["requests"]["purl"] == "pkg:pypi/requests@2.32.3"
    assert libs["requests"]["hashes"] == [{"alg": "SHA-256", "content": h1},
                                          {"alg": "SHA-256", "content": h2}]
    assert libs["numpy"]["hashes"] == [{"alg": "SHA-256", "content": h1}]


def test_spdx_ai_and_dataset_profiles(model_dir: Path) -> None:
    from spdx_python_model import v3_0_1 as m

    text = build_sbom(model_dir, fmt="spdx", name="acme/tiny-qa", commit=COMMIT)
    doc = json.loads(text)
    assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    graph = doc["@graph"]
    by_type: dict[str, list[dict]] = {}
    for g in graph:
        by_type.setdefault(g["type"], []).append(g)
    ids = {g.get("spdxId") for g in graph}
    model = next(g for g in by_type["ai_AIPackage"] if g["name"] == "acme/tiny-qa")
    assert model["software_packageUrl"] == f"pkg:huggingface/acme/tiny-qa@{COMMIT}"
    assert model["software_primaryPurpose"] == "model"
    files = {f["name"]: f for f in by_type["software_File"]}
    digest = hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest()
    assert files["config.json"]["verifiedUsing"] == [
        {"type": "Hash", "algorithm": "sha256", "hashValue": digest}]
    assert {d["name"] for d in by_type["dataset_DatasetPackage"]} == \
        {"rajpurkar/squad", "nyu-mll/glue"}
    rels = {r["relationshipType"]: r for r in by_type["Relationship"]}
    assert rels["trainedOn"]["from"] == model["spdxId"] and len(rels["trainedOn"]["to"]) == 2
    assert rels["contains"]["from"] == model["spdxId"] and len(rels["contains"]["to"]) == 4
    assert rels["ancestorOf"]["to"] == [model["spdxId"]]
    notes = [a["statement"] for a in by_type["Annotation"]
             if a["subject"] == files["extra.pkl"]["spdxId"]]
    assert notes and "malicious" in notes[0]
    # Every reference resolves inside the document.
    for r in by_type["Relationship"]:
        assert r["from"] in ids and all(t in ids for t in r["to"])
    objset = m.SHACLObjectSet()
    m.JSONLDDeserializer().read(io.BytesIO(text.encode()), objset)
    assert len(list(objset.foreach_type(m.software_File))) == 4
    assert {"core", "ai", "dataset"} <= set(by_type["SpdxDocument"][0]["profileConformance"])


def test_cli_stdout_output_and_errors(model_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["sbom", str(model_dir), "--name", "acme/tiny-qa"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metadata"]["component"]["purl"] == "pkg:huggingface/acme/tiny-qa"
    out = tmp_path / "bom.spdx.json"
    r = CliRunner().invoke(cli, ["sbom", str(model_dir), "--format", "spdx", "-o", str(out)])
    assert r.exit_code == 0 and json.loads(out.read_text())["@graph"]
    for args in (["sbom", str(tmp_path / "missing")],
                 ["sbom", str(model_dir), "--lockfile", str(tmp_path / "nope.lock")],
                 ["sbom", str(model_dir), "--name", "../etc"],
                 ["sbom", str(model_dir), "--revision", "main"],
                 ["sbom", "acme/none@main", "--store", str(tmp_path / "no-store")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 4, (args, r.output)
        assert "Traceback" not in r.output and "error:" in r.output


def test_invalid_bom_is_never_written(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from mlwarden.sbom import cyclonedx

    real = cyclonedx._add_what_the_library_lacks

    def broken(doc: dict, inv: object) -> None:
        real(doc, inv)  # type: ignore[arg-type]
        doc["metadata"]["component"]["modelCard"]["modelParameters"]["task"] = 42

    monkeypatch.setattr(cyclonedx, "_add_what_the_library_lacks", broken)
    out = tmp_path / "bom.json"
    r = CliRunner().invoke(cli, ["sbom", str(model_dir), "-o", str(out)])
    assert r.exit_code == 4 and "does not validate" in r.output
    assert not out.exists()


def test_bad_front_matter_is_reported_not_fatal(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "README.md").write_text("---\nlicense: [unclosed\n---\n")
    (d / "config.json").write_text("{}")
    doc = json.loads(build_sbom(d))
    props = {p["name"]: p["value"] for p in doc["metadata"]["component"]["properties"]}
    assert "invalid YAML" in props["mlwarden:model-card-error"]
    with pytest.raises(SbomInputError):
        build_sbom(d, fmt="xml")


def test_store_commit(model_dir: Path, tmp_path: Path) -> None:
    store_mod = pytest.importorskip("mlwarden.store")
    store = store_mod.Store.open(tmp_path / "store")
    c = store.commit_directory(model_dir, "acme/tiny-qa", approve=True, author="tester")
    store.close()
    r = CliRunner().invoke(cli, ["sbom", "acme/tiny-qa@main", "--store", str(tmp_path / "store")])
    assert r.exit_code == 0, r.output
    model = json.loads(r.stdout)["metadata"]["component"]
    assert model["purl"] == f"pkg:huggingface/acme/tiny-qa@{c.id}"
    assert {f["name"] for f in model["components"]} == \
        {"README.md", "config.json", "model.safetensors", "extra.pkl"}
    props = {p["name"]: p["value"] for p in model["properties"]}
    assert props["mlwarden:approved"] == "true" and props["mlwarden:verdict"] == "malicious"
