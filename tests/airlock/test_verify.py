"""`mlwarden verify`: store vs manifest, and upstream ref moves / content changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from airlock.conftest import REPO, Paths, Upstream, model_files
from airlock.hostile import HostileHub
from airlock.support import Live, serve_registry
from airlock.test_pull import pull
from mlwarden.cli.main import cli
from mlwarden.manifest import load
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store


def verify(paths: Paths, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["verify", "--store", str(paths.store), "--manifest",
                                 str(paths.manifest), *args])
    return r.exit_code, r.stdout, r.stderr


def _blob(paths: Paths, name: str) -> Path:
    sha = load(paths.manifest).models[REPO].files[name].sha256
    return paths.store / "blobs" / "sha256" / sha[:2] / sha[2:]


def test_verify_clean_then_tampered_then_missing(upstream: Upstream, paths: Paths) -> None:
    assert pull(paths, REPO, "--endpoint", upstream.url)[0] == 0
    code, out, err = verify(paths)
    assert code == 0, out + err
    assert "0 security event(s)" in err and "verified 5 file(s)" in err
    blob = _blob(paths, "model.safetensors")
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    code, out, err = verify(paths, "--format", "json")
    assert code == 1
    assert "verify-hash-mismatch" in out and "model.safetensors" in out
    blob.unlink()
    code, out, _ = verify(paths, "--format", "sarif")
    assert code == 1 and "verify-missing" in out


def test_verify_reports_interrupted_promotion(upstream: Upstream, paths: Paths) -> None:
    assert pull(paths, REPO, "--endpoint", upstream.url)[0] == 0
    s = Store.open(paths.store)
    s.revoke(REPO, upstream.commit, note="simulate a crash before approval")
    s.close()
    code, out, _ = verify(paths, "--format", "json")
    assert code == 1 and "verify-not-approved" in out


def test_upstream_tag_moved(tmp_path: Path, tiny_model: Path, paths: Paths) -> None:
    up = Store.open(tmp_path / "up")
    first = import_directory(up, tiny_model, REPO, tags=["v1"], approve=True).commit
    assert first is not None
    live = serve_registry(up)
    try:
        assert pull(paths, REPO, "--revision", "v1", "--endpoint", live.url)[0] == 0
        code, _, err = verify(paths, "--upstream")
        assert code == 0, err
        changed = tmp_path / "changed"
        changed.mkdir()
        for p in tiny_model.iterdir():
            (changed / p.name).write_bytes(p.read_bytes())
        (changed / "config.json").write_text('{"model_type": "bert", "hidden_size": 64}')
        second = import_directory(up, changed, REPO, message="v1 moved").commit
        assert second is not None
        up.approve(REPO, second.id, tags=["v1"], note="tag moved upstream")
        code, out, err = verify(paths, "--upstream", "--format", "json")
        assert code == 1, err
        assert "verify-upstream-ref-moved" in out and second.id in out
        assert "config.json" in out
    finally:
        live.stop()
        up.close()


def test_upstream_content_changed_at_pinned_commit(tiny_model: Path, paths: Paths,
                                                   hostile: Callable[[HostileHub], Live]) -> None:
    hub = HostileHub(REPO, model_files(tiny_model))
    live = hostile(hub)
    assert pull(paths, REPO, "--endpoint", live.url)[0] == 0
    assert verify(paths, "--upstream")[0] == 0
    hub.files["model.safetensors"] = hub.files["model.safetensors"][:-1] + b"\x00"
    code, out, _ = verify(paths, "--upstream", "--format", "json")
    assert code == 1 and "verify-upstream-file-changed" in out
    live.stop()
    code, out, _ = verify(paths, "--upstream", "--format", "json")
    assert code == 1 and "verify-upstream-error" in out


def test_verify_bad_inputs_are_clean(paths: Paths, tmp_path: Path) -> None:
    code, _, err = verify(paths)
    assert code == 4 and "manifest not found" in err
    paths.manifest.write_text("models: {}\n")
    code, _, err = verify(paths)
    assert code == 4 and "not an mlwarden store" in err
