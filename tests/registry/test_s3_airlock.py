"""The airlock's consumers of the store on S3 + PostgreSQL: pull, verify, sbom and the
guard's offline view all work without a local blob directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlwarden.cli.main import cli
from mlwarden.registry.app import Settings
from mlwarden.store import Store

REPO = "acme/tiny-bert"


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_pull_verify_sbom_and_guard_view_on_s3(tmp_path: Path, tiny_model: Path,
                                               postgres_url: str, s3_url: str, live,  # type: ignore[no-untyped-def]
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    upstream = Store.open(tmp_path / "upstream")
    upstream.commit_directory(tiny_model, REPO, approve=True, author="hub")
    srv = live(upstream, settings=Settings(allow_anonymous=True))
    monkeypatch.setenv("MLWARDEN_DB", postgres_url)
    monkeypatch.setenv("MLWARDEN_BLOBS", s3_url)
    monkeypatch.setenv("MLWARDEN_APPROVAL_LOG", "0")
    store, manifest = tmp_path / "store", tmp_path / "model-manifest.yaml"

    code, _, err = run("pull", REPO, "--endpoint", srv.url, "--store", str(store),
                       "--manifest", str(manifest), "--no-scan-cache")
    assert code == 0, err
    s = Store.open(store)
    assert s.blobs.kind == "s3" and not (store / "blobs").exists()
    head = s.resolve(REPO, "main")
    want = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tiny_model.iterdir()}
    assert {f.path: f.sha256 for f in s.files(REPO, head.id)} == want
    assert not list((store / "tmp").glob("quarantine-*/files/*"))  # quarantine emptied

    code, _, err = run("verify", "--manifest", str(manifest), "--store", str(store))
    assert code == 0, err

    code, out, err = run("sbom", f"{REPO}@main", "--store", str(store))
    assert code == 0, err
    bom = json.loads(out)
    assert bom["bomFormat"] == "CycloneDX" and want["model.safetensors"] in out

    from mlwarden.guard.view import materialize
    from mlwarden.manifest import load

    view = tmp_path / "view"
    assert materialize(load(manifest), store, view) == [REPO]
    snap = view / f"models--{REPO.replace('/', '--')}" / "snapshots" / head.id
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in snap.iterdir()} == want  # verified local copies of the S3 blobs

    # Tamper with a blob in the bucket: verify reports it.
    sha = want["config.json"]
    client = s.blobs._client  # type: ignore[attr-defined]
    client.put_object(Bucket=s.blobs.bucket, Key=s.blobs.key(sha),  # type: ignore[attr-defined]
                      Body=b'{"evil": true}')
    code, out, _ = run("verify", "--manifest", str(manifest), "--store", str(store))
    assert code != 0 and "config.json" in out
