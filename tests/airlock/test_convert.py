"""`mlwarden convert`: pickle -> safetensors in an isolated subprocess, with provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from airlock.conftest import malicious_pickle
from mlwarden.cli.main import cli
from mlwarden.convert import isolated_env, output_name
from mlwarden.manifest import ManifestFile, ModelEntry, load, update


def test_isolated_env_drops_credentials(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "HF_TOKEN": "hf_secret", "AWS_SECRET_ACCESS_KEY": "x",
            "HTTPS_PROXY": "http://corp:3128", "GITHUB_TOKEN": "g", "LANG": "C.UTF-8",
            "HOME": "/root", "PYTHONPATH": "/evil"}
    env = isolated_env(base, tmp_path)
    assert env["PATH"] == "/usr/bin" and env["LANG"] == "C.UTF-8"
    for k in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "PYTHONPATH"):
        assert k not in env
    assert env["HOME"] == str(tmp_path) and env["HF_HUB_OFFLINE"] == "1"
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://127.0.0.1:9"
    assert output_name(Path("pytorch_model-00001-of-00002.bin")) == \
        "model-00001-of-00002.safetensors"


def test_convert_records_provenance(tmp_path: Path) -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 3)
    src = tmp_path / "pytorch_model.bin"
    # Tied weights share storage: safetensors needs them separated, values intact.
    torch.save({"encoder.weight": w, "decoder.weight": w, "bias": torch.zeros(3)}, src)
    manifest = tmp_path / "model-manifest.yaml"
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    update(manifest, lambda m: m.with_model("acme/legacy", ModelEntry(
        commit="c" * 40, files={"pytorch_model.bin": ManifestFile(sha, src.stat().st_size)})))
    r = CliRunner().invoke(cli, ["convert", str(src), "--manifest", str(manifest), "--model",
                                 "acme/legacy"], env={"HF_TOKEN": "hf_must_not_leak"})
    assert r.exit_code == 0, r.output
    out = tmp_path / "model.safetensors"
    tensors = load_file(out)
    assert torch.equal(tensors["encoder.weight"], w) and torch.equal(tensors["decoder.weight"], w)
    conv = load(manifest).models["acme/legacy"].conversions[0]
    assert conv["from"]["sha256"] == sha
    assert conv["to"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert conv["to"]["verdict"] == "clean" and conv["tensors"] == 3
    assert "weights_only=True" in conv["method"]
    assert not list(tmp_path.glob(".mlwarden-convert-*"))


def test_convert_refuses_malicious_and_non_state_dicts(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.bin"
    evil.write_bytes(malicious_pickle(marker))
    r = CliRunner().invoke(cli, ["convert", str(evil)])
    assert r.exit_code == 4 and "scan verdict malicious" in r.stderr
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()
    odd = tmp_path / "odd.pt"
    torch.save([1, 2, 3], odd)
    r = CliRunner().invoke(cli, ["convert", str(odd)])
    assert r.exit_code == 4 and "state dict" in r.stderr
    assert not list(tmp_path.glob(".mlwarden-convert-*"))


@pytest.mark.parametrize("args", [["convert", "/nonexistent.bin"], ["convert", "."]])
def test_convert_bad_input(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                           ) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 4 and "Traceback" not in r.output
