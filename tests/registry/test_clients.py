"""The real huggingface_hub and transformers clients against `mlwarden serve` on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlwarden.registry.app import Settings
from mlwarden.store import Store
from registry.support import client_env, run_client

# Every test here runs on local files + SQLite and on S3 + PostgreSQL.
pytestmark = pytest.mark.usefixtures("store_backend")

REPO = "acme/tiny-bert"


def _result(proc) -> dict:  # type: ignore[no-untyped-def]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def repo_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("repo") / "tiny-bert"
    shutil.copytree(tiny_model, d)
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "sub" / "notes.txt").write_text("notes\n")
    (d / "sub" / "deeper" / "a.txt").write_text("deep\n")
    return d


def test_real_clients_end_to_end(repo_dir: Path, tmp_path: Path, live) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(tmp_path / "store")
    v1 = store.commit_directory(repo_dir, REPO, tags=["release/v1"], approve=True,
                                message="v1", author="tester")
    # A later commit that nobody approved: invisible, even by its full id.
    changed = tmp_path / "changed"
    shutil.copytree(repo_dir, changed)
    (changed / "README.md").write_text("# changed\n")
    pending_commit = store.commit_directory(changed, REPO, message="unreviewed")
    store.commit_directory(repo_dir, "acme/pending", message="never approved")
    _, token = store.create_token("ci", ["acme:read"])
    server = live(store, settings=Settings(tree_page_size=3))

    env = client_env(tmp_path, server.url, token)
    online = _result(run_client("client_checks.py", env, "online", REPO, str(repo_dir),
                                pending_commit.id))
    files = sorted(str(p.relative_to(repo_dir)) for p in repo_dir.rglob("*") if p.is_file())

    assert online["info_sha"] == v1.id
    assert online["info_v1_sha"] == v1.id
    assert online["info_siblings"] == files
    assert sorted(online["files"]) == files  # paginated tree (page size 3), recursive
    assert "sub" in online["tree_top"] and "sub/notes.txt" not in online["tree_top"]
    assert online["branches"] == {"main": v1.id}
    assert online["tags"] == {"release/v1": v1.id}
    st_sha = __import__("hashlib").sha256((repo_dir / "model.safetensors").read_bytes())
    assert online["paths_info"]["config.json"][0] == "RepoFile"
    assert online["paths_info"]["config.json"][1] == (repo_dir / "config.json").stat().st_size
    assert online["paths_info"]["model.safetensors"][2] == st_sha.hexdigest()
    assert online["paths_info"]["sub"][0] == "RepoFolder"
    assert "nope.txt" not in online["paths_info"]
    assert online["download_ok"] and online["download_tag_ok"] and online["download_sha_ok"]
    assert online["snapshot_files"] == files and online["snapshot_ok"]
    assert online["config_hidden_size"] == 32
    assert online["tokens"][0] == 2 and online["tokens"][-1] == 3  # [CLS] ... [SEP]
    assert online["output_shape"] == [1, 4, 32]

    assert online["err_pending"].startswith("raised RepositoryNotFoundError")
    assert online["err_pending_download"].startswith("raised RepositoryNotFoundError")
    assert online["err_unknown_repo"].startswith("raised RepositoryNotFoundError")
    assert online["err_revision"].startswith("raised RevisionNotFoundError")
    assert online["err_revision_info"].startswith("raised RevisionNotFoundError")
    assert online["err_unapproved_sha"].startswith("raised RevisionNotFoundError")
    assert online["err_entry"].startswith(("raised RemoteEntryNotFoundError",
                                           "raised EntryNotFoundError"))

    # Offline re-load from the client's cache: no request may reach the server.
    server.flush_audit()
    before = len(store.audit())
    offline = _result(run_client("client_checks.py",
                                 client_env(tmp_path, server.url, token, offline=True),
                                 "offline", REPO, str(repo_dir)))
    assert offline["download_ok"] and offline["snapshot_ok"]
    assert offline["param_sum"] == pytest.approx(online["param_sum"])
    assert offline["output_shape"] == [1, 4, 32]
    server.flush_audit()
    assert len(store.audit()) == before

    # Every download was audited with its commit and byte count.
    downloads = store.audit(repo=REPO, action="download")
    weights = [e for e in downloads if e.path == "model.safetensors" and e.status == 200]
    assert weights and all(e.commit == v1.id for e in weights)
    assert weights[0].bytes == (repo_dir / "model.safetensors").stat().st_size
    assert all(e.actor.startswith("token:ci/") for e in downloads)
    denied = store.audit(action="denied")
    assert any(e.repo == "acme/pending" for e in denied)
