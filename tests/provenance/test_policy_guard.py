"""Provenance required per model, end to end with real components: the trained model and
two bad variants in the real registry, pulled through the airlock with
`[policy.provenance]`, then loaded with transformers under `mlwarden run
--require-provenance` (`[guard.provenance]`)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock.support import isolated_env, run_cli, serve_registry
from corpus.pki import Pki
from mlwarden.guard.provenance import provenance_from_mapping
from mlwarden.policy import PolicyError, load_policy
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store
from provenance.support import BUILDER, SOURCE, Trained

GOOD = "acme/trained"
MISSING = "acme/no-provenance"
SWAPPED = "acme/swapped-weights"
OTHER = "partner/model"  # not covered by the requirement


def config(path: Path, keys: Pki, table: str) -> Path:
    path.write_text(f"""
[{table}]
require = false

[[{table}.models]]
match = "acme/*"
require = true
builders = [{BUILDER.split("@")[0]!r}]
source = {SOURCE!r}
source-ref = "refs/heads/main"
public-keys = [{str(keys.pub)!r}]
""")
    return path


@dataclass(frozen=True)
class Upstream:
    url: str
    root: Path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, trained: Trained) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("prov-upstream")
    store = Store.open(root / "upstream")
    for repo in (GOOD, MISSING, SWAPPED, OTHER):
        d = root / "models" / repo
        shutil.copytree(trained.model, d)
        if repo in (MISSING, OTHER):
            (d / "provenance.json").unlink()
        if repo == SWAPPED:
            w = d / "model.safetensors"
            data = bytearray(w.read_bytes())
            data[-4:] = b"\x00\x00\x80\x3f"
            w.write_bytes(bytes(data))
        assert import_directory(store, d, repo, approve=True).commit is not None
    live = serve_registry(store)
    try:
        yield Upstream(live.url, root)
    finally:
        live.stop()
        store.close()


def pull(up: Upstream, repo: str, store: Path, manifest: Path, policy: Path,
         tmp: Path) -> tuple[int, dict]:
    proc = run_cli(["pull", repo, "--endpoint", up.url, "--store", str(store), "--manifest",
                    str(manifest), "--policy", str(policy), "--format", "json"],
                   isolated_env(tmp), timeout=300)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_airlock_requires_provenance(upstream: Upstream, keys: Pki, tmp_path: Path) -> None:
    policy = config(tmp_path / "mlwarden.toml", keys, "policy.provenance")
    store, manifest = tmp_path / "store", tmp_path / "model-manifest.yaml"
    code, doc = pull(upstream, GOOD, store, manifest, policy, tmp_path)
    assert code == 0 and doc["admitted"]
    verified = [d for d in doc["decisions"] if d["rule"] == "policy-provenance-verified"]
    assert verified and BUILDER in verified[0]["message"]
    code, doc = pull(upstream, MISSING, store, manifest, policy, tmp_path)
    assert code == 1 and not doc["admitted"]
    assert {d["rule"] for d in doc["decisions"] if d["action"] == "block"} == \
        {"policy-provenance-missing"}
    code, doc = pull(upstream, SWAPPED, store, manifest, policy, tmp_path)
    assert code == 1
    blocks = [d for d in doc["decisions"] if d["action"] == "block"]
    assert {d["rule"] for d in blocks} == {"policy-provenance"}
    assert any(d.get("path") == "model.safetensors" and "provenance-subject-mismatch" in
               d["message"] for d in blocks)
    code, doc = pull(upstream, OTHER, store, manifest, policy, tmp_path)  # not required
    assert code == 0
    # The requirement is part of the recorded policy version.
    assert load_policy(policy).fingerprint() != load_policy(None, tmp_path / "none").fingerprint()


CHILD = r"""
import json, sys
from transformers import AutoModelForMaskedLM
out = {}
for repo in sys.argv[1:]:
    try:
        out[repo] = type(AutoModelForMaskedLM.from_pretrained(repo)).__name__
    except Exception as exc:
        out[repo] = f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
import mlwarden.guard as g
out["verified"] = g.state().provenance.verified
print(json.dumps(out))
"""


def test_guard_refuses_models_without_required_provenance(upstream: Upstream, keys: Pki,
                                                          tmp_path: Path) -> None:
    store, manifest = tmp_path / "store", tmp_path / "model-manifest.yaml"
    open_policy = tmp_path / "open.toml"
    open_policy.write_text("[policy]\n")
    for repo in (GOOD, MISSING, SWAPPED, OTHER):  # admitted: this airlock does not check
        code, _ = pull(upstream, repo, store, manifest, open_policy, tmp_path)
        assert code == 0, repo
    guard = config(tmp_path / "guard.toml", keys, "guard.provenance")
    proc = run_cli(["run", "--require-provenance", "--policy", str(guard), "--manifest",
                    str(manifest), "--store", str(store), "--hf-cache", str(tmp_path / "view"),
                    "--", sys.executable, "-c", CHILD, GOOD, MISSING, SWAPPED, OTHER],
                   isolated_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[GOOD] == "BertForMaskedLM"
    assert out[MISSING].startswith("raised GuardViolation: guard-provenance-missing: ")
    assert out[SWAPPED].startswith("raised GuardViolation: guard-provenance: ")
    assert "provenance-subject-mismatch" in out[SWAPPED]
    # --require-provenance makes every model need it, including those outside acme/*.
    assert out[OTHER].startswith("raised GuardViolation: guard-provenance-missing")
    assert out["verified"] == 2  # once per model with a record


def test_guard_configuration_fails_closed(tmp_path: Path, keys: Pki) -> None:
    with pytest.raises(PolicyError, match="no builders"):
        provenance_from_mapping({"require": True, "public-keys": [str(keys.pub)]}, tmp_path)
    with pytest.raises(PolicyError, match="no public key"):
        provenance_from_mapping({"require": True, "builders": [BUILDER]}, tmp_path)
    with pytest.raises(PolicyError, match="unknown keys"):
        provenance_from_mapping({"require": False, "bulders": []}, tmp_path)
    (tmp_path / "m.yaml").write_text("version: 1\nmodels: {}\n")
    proc = run_cli(["run", "--manifest", str(tmp_path / "m.yaml"), "--require-provenance",
                    "--", sys.executable, "-c", "print('ran')"], isolated_env(tmp_path),
                   cwd=tmp_path)
    assert proc.returncode == 4 and "[guard.provenance]" in proc.stderr
    assert "ran" not in proc.stdout
