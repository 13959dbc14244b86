"""`mlwarden trace`: every commit holding a poisoned blob (with its tags, its deployment, the
approval-log entries and the fleet-scan rows naming it), every model trained on a dataset
digest (through the training runs' provenance, including copies of their outputs),
packages and advisories through BOMs and provenance records; table, JSON and SARIF."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus.pki import Pki, make_pki
from incident.support import model_dir, record, sha
from mlwarden.deploy import BomSigner, deploy
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store

POISON = b"\x80\x04\x95poisoned weights" * 64
DATA_1 = b'{"text": "the shared training set"}\n' * 50
DATA_2 = b'{"text": "another training set"}\n' * 50


@dataclass(frozen=True)
class World:
    store: Path
    commits: dict[str, str]  # label -> repo@commit
    deployment: Path
    keys: Pki
    fleet: Path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def weights(seed: int) -> bytes:
    import numpy as np
    from safetensors.numpy import save

    return save({"w": np.full((4, 4), seed, dtype=np.float32)})


def write_fleet(d: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d.mkdir()
    pq.write_table(pa.table({"repo": ["hf://other/mirror@main", "hf://other/clean@main"],
                             "commit": ["e" * 40, "f" * 40], "status": ["scanned"] * 2}),
                   d / "repos-0001.parquet")
    pq.write_table(pa.table({
        "repo": ["hf://other/mirror@main", "hf://other/clean@main"],
        "path": ["pytorch_model.bin", "model.safetensors"],
        "verdict": ["malicious", "clean"], "size": [len(POISON), 10],
        "sha256": [sha(POISON), "0" * 64],
        "rules": ['["pickle-dangerous-callable"]', "[]"]}), d / "files-0001.parquet")
    # A killed batch (files without repos) is not evidence.
    pq.write_table(pa.table({"repo": ["hf://other/ghost"], "path": ["x.bin"],
                             "verdict": ["malicious"], "size": [1], "sha256": [sha(POISON)],
                             "rules": ["[]"]}), d / "files-0002.parquet")
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("trace")
    keys = make_pki(root / "pki")
    store = Store.open(root / "store")
    commits: dict[str, str] = {}

    def add(label: str, repo: str, files: dict[str, bytes], rec: bytes | None = None,
            tags: tuple[str, ...] = ()) -> None:
        d = model_dir(root / "src" / label, files, rec)
        c = import_directory(store, d, repo, approve=True, tags=list(tags)).commit
        assert c is not None
        commits[label] = f"{repo}@{c.id}"

    add("a1", "acme/a", {"weights.bin": POISON, "config.json": b"{}"}, tags=("v1",))
    add("a2", "acme/a", {"weights.bin": POISON, "config.json": b'{"v": 2}'})
    add("b1", "acme/b", {"sub/layer.pt": POISON, "README.md": b"b"})
    add("c1", "acme/c", {"weights.bin": b"clean", "config.json": b"{}"})
    m1, m2, m3 = (weights(i) for i in (1, 2, 3))
    add("m1", "acme/m1", {"model.safetensors": m1},
        record(keys.key, "101", {"model.safetensors": m1}, datasets={"train.jsonl": DATA_1},
               dists={"torch": "2.13.0", "transformers": "4.30.0"}))
    add("m2", "acme/m2", {"model.safetensors": m2, "config.json": b"{}"},
        record(keys.key, "102", {"model.safetensors": m2, "config.json": b"{}"},
               datasets={"train.jsonl": DATA_1},
               dists={"torch": "2.1.0", "transformers": "5.25.0"}))
    add("m3", "acme/m3", {"model.safetensors": m3},
        record(keys.key, "103", {"model.safetensors": m3}, datasets={"other.jsonl": DATA_2},
               dists={"torch": "2.13.0", "transformers": "5.25.0"}))
    add("fork", "forks/m1", {"model.safetensors": m1, "README.md": b"a copy of m1"})
    # Shares only a generic file with m2's outputs: not an output of m2's run.
    add("cfg", "acme/same-config", {"model.safetensors": weights(9), "config.json": b"{}"})
    dep = root / "deploy" / "svc-b"
    deploy(store, "acme/b", "main", dep, signer=BomSigner(key=str(keys.key)))
    store.close()
    return World(root / "store", commits, dep, keys, write_fleet(root / "fleet"))


def trace(world: World, *args: str | Path, fmt: str = "json") -> tuple[int, dict, str]:
    res = cli("trace", *args, "--store", world.store, "--fleet", world.fleet, "--format", fmt)
    doc = json.loads(res.stdout) if fmt != "table" and res.stdout.strip() else {}
    return res.returncode, doc, res.stderr + (res.stdout if fmt == "table" else "")


def test_every_commit_with_a_poisoned_blob(world: World) -> None:
    code, doc, err = trace(world, sha(POISON))
    assert code == 1, err
    meta = doc["meta"]
    c = world.commits
    assert meta["commits"] == sorted([c["a1"], c["a2"], c["b1"]])
    assert meta["models"] == ["acme/a", "acme/b", "other/mirror"]
    assert sorted(meta["tags"]) == ["acme/a:main", "acme/a:v1", "acme/b:main"]
    assert meta["deployments"] == ["svc-b"]
    relations: dict[tuple[str, str], list[str]] = {}
    for h in meta["hits"]:
        relations.setdefault((h["kind"], h["id"]), []).append(h["relation"])
    assert "contains it as sub/layer.pt [served]" in relations[("commit", c["b1"])]
    assert ("fleet", f"other/mirror@{'e' * 40}") in relations
    assert not any("ghost" in h["id"] for h in meta["hits"])  # incomplete batch ignored
    # The BOM the deployment signed lists it too.
    assert any(h["kind"] == "sbom" and "sub/layer.pt" in h["relation"] for h in meta["hits"])
    assert "3 commit(s)" in err and "1 deployment(s)" in err


def test_every_model_trained_on_a_dataset(world: World) -> None:
    code, doc, _ = trace(world, f"sha256:{sha(DATA_1)}")
    assert code == 1
    meta = doc["meta"]
    c = world.commits
    # m1 and m2 were trained on it; the fork holds m1's weights; m3 used other data.
    assert meta["commits"] == sorted([c["m1"], c["m2"], c["fork"]])
    assert meta["training_runs"] == sorted(
        f"https://github.com/acme/train/actions/runs/{r}/attempts/1" for r in ("101", "102"))
    fork = next(h for h in meta["hits"] if h["id"] == c["fork"])
    assert "model.safetensors is its output" in fork["relation"]


def test_packages_and_advisories(world: World) -> None:
    code, doc, _ = trace(world, "torch==2.13.0")
    assert code == 1
    assert doc["meta"]["commits"] == sorted([world.commits["m1"], world.commits["m3"],
                                             world.commits["fork"]])
    code, doc, _ = trace(world, "torch<2.5")
    assert doc["meta"]["commits"] == [world.commits["m2"]]
    # CVE-2023-6730: transformers before 4.36.0 (the bundled OSV data).
    code, doc, _ = trace(world, "CVE-2023-6730")
    assert code == 1
    assert world.commits["m1"] in doc["meta"]["commits"]
    assert world.commits["m2"] not in doc["meta"]["commits"]
    code, doc, _ = trace(world, "GHSA-3863-2447-669p")  # by alias
    assert world.commits["m1"] in doc["meta"]["commits"]
    # The fleet's rule ids are searched for advisory-like queries too.
    code, doc, _ = trace(world, "numpy==0.1")
    assert code == 0 and doc["meta"]["commits"] == []


def test_formats_and_bad_input(world: World, tmp_path: Path) -> None:
    code, sarif, _ = trace(world, sha(POISON), fmt="sarif")
    assert code == 1
    rules = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert {"trace-affected-deployment", "trace-affected-commit", "trace-affected-tag",
            "trace-fleet-result"} <= rules
    code, _, out = trace(world, sha(POISON), fmt="table")
    assert code == 1 and "trace-affected-deployment" in out and "svc-b" in out
    res = cli("trace", "not a query!", "--store", world.store)
    assert res.returncode == 4 and "not a sha256" in res.stderr
    res = cli("trace", sha(POISON))
    assert res.returncode == 4 and "nothing to search" in res.stderr
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"PAR1 not really")
    res = cli("trace", sha(POISON), "--fleet", bad)
    assert res.returncode == 4 and "cannot read Parquet" in res.stderr
    code, doc, _ = trace(world, "1" * 64)
    assert code == 0 and doc["meta"]["commits"] == []


def test_provenance_files_outside_the_store(world: World, tmp_path: Path) -> None:
    rec = tmp_path / "runs"
    rec.mkdir()
    (rec / "r.intoto.json").write_bytes(record(world.keys.key, "900", {"out.bin": b"o"},
                                               datasets={"d.csv": b"secret data"}))
    res = cli("trace", sha(b"secret data"), "--provenance", rec, "--format", "json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["meta"]["training_runs"] == \
        ["https://github.com/acme/train/actions/runs/900/attempts/1"]
