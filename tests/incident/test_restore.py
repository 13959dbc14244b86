"""`mlwarden restore`: a deployment or a tag goes back to the newest commit whose signed
ML-BOM and provenance verify (revoked commits, commits never given a signed BOM, and
commits whose provenance does not match are passed over), logged as an approval."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus.pki import Pki, make_pki
from incident.support import BUILDER, model_dir, record
from mlwarden.approvals import read_log
from mlwarden.deploy import BomSigner, deploy, read_record
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store


@dataclass(frozen=True)
class World:
    store: Path
    dep: Path
    policy: Path
    keys: Pki
    commits: dict[str, str]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def world(tmp_path: Path) -> World:
    keys = make_pki(tmp_path / "pki")
    store = Store.open(tmp_path / "store")
    signer = BomSigner(key=str(keys.key))
    commits: dict[str, str] = {}
    dep = tmp_path / "deploy" / "svc"

    def add(label: str, weights: bytes, *, good_record: bool = True,
            deployed: bool = True) -> None:
        files = {"model.safetensors": weights, "config.json": b"{}"}
        rec_outputs = dict(files) if good_record else {**files, "model.safetensors": b"other"}
        d = model_dir(tmp_path / "src" / label, files, record(keys.key, label, rec_outputs))
        c = import_directory(store, d, "acme/r", approve=True, tags=["prod"]).commit
        assert c is not None
        commits[label] = c.id
        if deployed:
            deploy(store, "acme/r", c.id, dep, signer=signer)

    add("v1", b"one" * 100)
    add("v2", b"two" * 100)
    add("bad-record", b"three" * 100, good_record=False)
    add("never-deployed", b"four" * 100, deployed=False)
    add("v5", b"five" * 100)  # the incident: deployed and tagged, then revoked
    store.revoke("acme/r", commits["v5"], note="poisoned")
    store.close()
    policy = tmp_path / "mlwarden.toml"
    policy.write_text(f"""[policy.provenance]
require = true
builders = [{BUILDER!r}]
source = "github.com/acme/train"
public-keys = [{str(keys.pub)!r}]
""")
    return World(tmp_path / "store", dep, policy, keys, commits)


def test_restore_a_deployment(world: World) -> None:
    assert read_record(world.dep).commit == world.commits["v5"]
    res = cli("restore", "--store", world.store, "--deployment", world.dep, "--policy",
              world.policy, "--public-key", world.keys.pub, "--key", world.keys.key,
              "--note", "INC-7", "--format", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    c = world.commits
    assert doc["previous"] == c["v5"] and doc["restored"] == c["v2"]
    tried = {x["commit"]: x for x in doc["candidates"]}
    assert not tried[c["never-deployed"]]["ok"]
    assert "no signed ML-BOM" in " ".join(tried[c["never-deployed"]]["reasons"])
    assert not tried[c["bad-record"]]["ok"]
    assert "provenance:" in " ".join(tried[c["bad-record"]]["reasons"])
    assert tried[c["v2"]]["ok"] and c["v1"] not in tried  # the newest good one wins
    rec = read_record(world.dep)
    assert rec.commit == c["v2"] and rec.action == "restore"
    assert (world.dep / "model" / "model.safetensors").read_bytes() == b"two" * 100
    # The restored deployment verifies against its freshly signed BOM.
    ver = cli("verify", "--sbom", rec.sbom, "--public-key", world.keys.pub, world.dep / "model")
    assert ver.returncode == 0, ver.stderr
    log = read_log(world.store)
    restore = [e for e in log if e.kind == "approval" and e.details.get("action") == "restore"]
    assert len(restore) == 2  # the deploy of the restored release, and the restore itself
    assert restore[-1].details["note"] == "INC-7"
    assert restore[-1].details["previous"] == c["v5"]


def test_restore_a_tag(world: World) -> None:
    store = Store.open(world.store, create=False)
    try:
        assert {r.name: r.commit for r in store.refs("acme/r", approved_only=False)}["prod"] \
            == world.commits["v5"]
    finally:
        store.close()
    dry = cli("restore", "--store", world.store, "--tag", "acme/r:prod", "--policy",
              world.policy, "--public-key", world.keys.pub, "--dry-run")
    assert dry.returncode == 0 and "would restore tag acme/r:prod" in dry.stdout
    res = cli("restore", "--store", world.store, "--tag", "acme/r:prod", "--policy",
              world.policy, "--public-key", world.keys.pub)
    assert res.returncode == 0, res.stderr
    store = Store.open(world.store, create=False)
    try:
        refs = {r.name: r.commit for r in store.refs("acme/r")}
        assert refs["prod"] == world.commits["v2"]  # visible to clients again
        events = [e for e in store.approvals("acme/r") if e.commit == world.commits["v2"]]
        assert any("restore prod" in e.note for e in events)
    finally:
        store.close()
    assert any(e.details.get("action") == "restore" and e.details.get("target") ==
               "tag acme/r:prod" for e in read_log(world.store))


def test_nothing_qualifies(world: World, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other")
    res = cli("restore", "--store", world.store, "--deployment", world.dep, "--policy",
              world.policy, "--public-key", other.pub, "--key", world.keys.key)
    assert res.returncode == 1
    assert "no earlier commit" in res.stderr
    assert read_record(world.dep).commit == world.commits["v5"]  # untouched
    res = cli("restore", "--store", world.store, "--deployment", world.dep, "--policy",
              tmp_path / "missing.toml", "--public-key", world.keys.pub, "--key",
              world.keys.key)
    assert res.returncode == 4 and "Traceback" not in res.stderr
