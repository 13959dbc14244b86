"""`mlwarden pull` end to end against the real registry on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from airlock.conftest import REPO, Paths, Upstream
from airlock.support import store_state
from mlwarden.cli.main import cli
from mlwarden.store import Store


def pull(paths: Paths, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["pull", *args, "--store", str(paths.store), "--manifest",
                                 str(paths.manifest), "--scan-cache", str(paths.cache)])
    return r.exit_code, r.stdout, r.stderr


def test_pull_branch_promotes_and_pins(upstream: Upstream, paths: Paths) -> None:
    code, out, err = pull(paths, REPO, "--endpoint", upstream.url)
    assert code == 0, err
    assert "model.safetensors" in out and "lfs sha256 ok" in out and "git sha1 ok" in out
    m = yaml.safe_load(paths.manifest.read_text())
    entry = m["models"][REPO]
    assert entry["commit"] == upstream.commit
    assert entry["ref"] == "main" and entry["ref_kind"] == "branch"
    assert entry["scan"]["verdict"] == "clean" and entry["scan"]["scanner"].startswith("mlwarden")
    local = {p.name: p for p in upstream.model_dir.iterdir()}
    import hashlib

    for name, f in entry["files"].items():
        data = local[name].read_bytes()
        assert f == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                     "verdict": "clean"}
    # Promoted as the same commit id, approved, with main pointing at it.
    state = store_state(paths.store)
    assert state[REPO]["approved"] == [upstream.commit]
    assert ("main", "branch", upstream.commit) in state[REPO]["refs"]
    # Nothing is left in quarantine.
    assert not list((paths.store / "tmp").glob("quarantine-*"))


def test_pull_tag_records_resolution_and_uses_scan_cache(upstream: Upstream,
                                                         paths: Paths) -> None:
    code, _, err = pull(paths, REPO, "--revision", "v1", "--endpoint", upstream.url)
    assert code == 0, err
    assert "0 from the scan cache" in err
    entry = yaml.safe_load(paths.manifest.read_text())["models"][REPO]
    assert (entry["ref"], entry["ref_kind"], entry["commit"]) == ("v1", "tag", upstream.commit)
    assert ("v1", "tag", upstream.commit) in store_state(paths.store)[REPO]["refs"]
    # Second pull by commit id: every file comes from the scan cache.
    code, _, err = pull(paths, REPO, "--revision", upstream.commit, "--endpoint", upstream.url)
    assert code == 0, err
    assert "5 from the scan cache" in err
    entry = yaml.safe_load(paths.manifest.read_text())["models"][REPO]
    assert entry["ref_kind"] == "commit" and entry["ref"] is None


def test_pull_json_and_manifest_is_stable(upstream: Upstream, paths: Paths) -> None:
    code, out, _ = pull(paths, REPO, "--endpoint", upstream.url, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["admitted"] and doc["commit"] == upstream.commit
    first = paths.manifest.read_text()
    lines = first.splitlines()
    assert lines[0].startswith("# model-manifest.yaml")
    # Keys are sorted: re-dumping the parsed document gives the same text.
    body = yaml.safe_dump(yaml.safe_load(first), sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=100)
    assert first.endswith(body)


def test_pulled_store_is_served_by_the_registry(upstream: Upstream, paths: Paths) -> None:
    """The store pull writes is the store `mlwarden serve` serves."""
    from huggingface_hub import HfApi

    from airlock.support import serve_registry

    assert pull(paths, REPO, "--endpoint", upstream.url)[0] == 0
    store = Store.open(paths.store, create=False)
    live = serve_registry(store)
    try:
        api = HfApi(endpoint=live.url, token=False)
        assert api.model_info(REPO).sha == upstream.commit
        assert sorted(api.list_repo_files(REPO)) == sorted(
            p.name for p in upstream.model_dir.iterdir())
    finally:
        live.stop()
        store.close()


def test_pull_unknown_repo_is_a_clean_error(upstream: Upstream, paths: Paths) -> None:
    code, _, err = pull(paths, "acme/nope", "--endpoint", upstream.url)
    assert code == 4
    assert "repository not found" in err and "Traceback" not in err
    code, _, err = pull(paths, REPO, "--revision", "nosuchtag", "--endpoint", upstream.url)
    assert code == 4 and "revision not found" in err


def test_policy_blocks_with_reason(upstream: Upstream, paths: Paths, tmp_path: Path) -> None:
    policy = tmp_path / "mlwarden.toml"
    policy.write_text('[policy]\nallowed-orgs = ["google"]\nmax-file-size = "10KB"\n')
    code, _, err = pull(paths, REPO, "--endpoint", upstream.url, "--policy", str(policy))
    assert code == 1
    assert "policy-org-not-allowed" in err and "nothing was promoted" in err
    assert not paths.manifest.exists()
    assert store_state(paths.store) == {}


def test_unreachable_upstream_is_a_clean_error(paths: Paths) -> None:
    from airlock.support import free_port

    code, _, err = pull(paths, REPO, "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert code == 4 and "Traceback" not in err and err.startswith("mlwarden: error:")
