"""`mlwarden import | approve | token | audit` through the command line."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlwarden.cli.main import cli
from mlwarden.store import Store

# Every test here runs on local files + SQLite and on S3 + PostgreSQL.
pytestmark = pytest.mark.usefixtures("store_backend")


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    d = tmp_path / "clean"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert"}\n')
    (d / "README.md").write_text("# model\n")
    return d


class Payload:
    """Harmless: the command would only create a marker file in the test's temp dir."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_import_approve_and_audit(tmp_path: Path, clean_dir: Path) -> None:
    store = str(tmp_path / "store")
    code, out, err = run("import", str(clean_dir), "--repo", "acme/m", "--store", store,
                         "--tag", "v1", "-m", "first")
    assert code == 0, err
    cid = out.strip()
    assert len(cid) == 40 and "pending approval" in err
    s = Store.open(store)
    assert s.visible_repo("acme/m") is None  # imported, not yet served
    code, out, _ = run("approve", "acme/m", cid[:12], "--store", store, "--by", "alice",
                       "--note", "reviewed")
    assert code == 0 and f"approved acme/m@{cid}" in out
    assert s.resolve("acme/m", "v1").id == cid and s.resolve("acme/m", "main").id == cid
    code, out, _ = run("audit", "--store", store, "--format", "json")
    entries = json.loads(out)
    assert [(e["action"], e["actor"]) for e in entries] == \
        [("approve", "alice"), ("move-branch", "alice"), ("move-tag", "alice")]
    assert entries[2]["detail"] == f"v1: - -> {cid}"
    code, out, _ = run("audit", "--store", store, "--action", "move-tag", "--since", "1h",
                       "--format", "json")
    assert code == 0 and [e["action"] for e in json.loads(out)] == ["move-tag"]
    code, out, _ = run("audit", "--store", store)
    assert code == 0 and "alice" in out
    code, _, err = run("approve", "acme/m", "nope", "--store", store)
    assert code == 4 and "no revision nope" in err


def test_import_with_approve_flag_prints_commit(tmp_path: Path, clean_dir: Path) -> None:
    store = str(tmp_path / "store")
    code, out, _ = run("import", str(clean_dir), "--repo", "acme/m", "--store", store,
                       "--approve", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["approved"] and doc["scan"]["verdict"] == "clean"
    assert Store.open(store).resolve("acme/m", "main").id == doc["commit"]


def test_import_refuses_unscannable_payload(tmp_path: Path, clean_dir: Path) -> None:
    marker = tmp_path / "marker"
    data = pickle.dumps(Payload(marker), protocol=2)
    # A payload pickle cut short: unscannable to a partial analyser, malicious to a full
    # one; the default policy refuses both.
    (clean_dir / "pytorch_model.bin").write_bytes(data[:-2])
    store = tmp_path / "store"
    code, out, err = run("import", str(clean_dir), "--repo", "acme/m", "--store", str(store))
    assert code in (1, 2) and "refused" in err
    assert "pytorch_model.bin" in out and str(clean_dir) in out  # report shows user paths
    assert Store.open(store).repos() == []
    assert not marker.exists()
    assert not list(Store.open(store).blobs.iter_all())  # nothing promoted


def test_strict_policy_refuses_os_system_pickle(tmp_path: Path, clean_dir: Path) -> None:
    marker = tmp_path / "marker"
    (clean_dir / "model.pkl").write_bytes(pickle.dumps(Payload(marker), protocol=2))
    store = tmp_path / "store"
    code, out, _ = run("import", str(clean_dir), "--repo", "acme/m", "--store", str(store),
                       "--policy", "strict", "--format", "json")
    assert code in (1, 3) and json.loads(out)["files"]
    assert Store.open(store).repos() == [] and not marker.exists()


def test_import_bad_input_is_a_clean_error(tmp_path: Path, clean_dir: Path) -> None:
    store = str(tmp_path / "store")
    code, _, err = run("import", str(tmp_path / "missing"), "--repo", "acme/m", "--store", store)
    assert code == 4 and "not a directory" in err
    code, _, err = run("import", str(clean_dir), "--repo", "../etc", "--store", store)
    assert code == 4 and "invalid repository id" in err
    code, _, err = run("import", str(clean_dir), "--repo", "a/b", "--store", store,
                       "--tag", "a" * 40)
    assert code == 4 and "invalid ref name" in err
    nostore = tmp_path / "nostore"  # (with PostgreSQL, the database is the store)
    code, _, err = run("audit", "--store", str(nostore), "--db", f"sqlite:///{nostore}/meta.db")
    assert code == 4 and "not an mlwarden store" in err


def test_token_commands(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    code, out, err = run("token", "create", "--store", store, "--scope", "acme:read",
                         "--name", "ci", "--expires", "30d")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("mlw_") and "cannot be shown again" in err
    code, out, _ = run("token", "list", "--store", store, "--format", "json")
    rows = json.loads(out)
    assert rows[0]["name"] == "ci" and rows[0]["state"] == "active"
    assert token not in out and token.split("_", 2)[2] not in out
    assert run("token", "revoke", "ci", "--store", store)[0] == 0
    assert json.loads(run("token", "list", "--store", store, "--format", "json")[1])[0][
        "state"] == "revoked"
    code, _, err = run("token", "create", "--store", store, "--scope", "acme:delete")
    assert code == 4 and "access must be one of" in err
    code, _, err = run("token", "create", "--store", store, "--scope", "acme:admin")
    assert code == 4 and "only as '*:admin'" in err
    code, _, err = run("token", "create", "--store", store, "--scope", "a:read",
                       "--expires", "soon")
    assert code == 4 and "cannot read time" in err


def test_import_real_tiny_model_passes_default_policy(tmp_path: Path, tiny_model: Path) -> None:
    store = str(tmp_path / "store")
    code, out, err = run("import", str(tiny_model), "--repo", "acme/tiny", "--store", store,
                         "--approve")
    assert code == 0, err + out
    s = Store.open(store)
    files = {f.path for f in s.files("acme/tiny", out.strip())}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
