"""After `pull`, transformers loads the model with no Hub access: through the offline guard
(`mlwarden run`), and through HF_ENDPOINT at `mlwarden serve`. The guard refuses tampered
files, unsafe torch.load, use_safetensors=False and unreviewed remote code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airlock.conftest import REPO, Paths, Upstream, malicious_pickle
from airlock.support import HERE, isolated_env, run_cli, serve_registry
from airlock.test_pull import pull
from mlwarden.manifest import load
from mlwarden.store import Store


@pytest.fixture(scope="module")
def expected_ids(upstream: Upstream) -> list[int]:
    from transformers import AutoTokenizer

    return list(AutoTokenizer.from_pretrained(upstream.model_dir)("hello world")["input_ids"])


@pytest.fixture
def pulled(upstream: Upstream, paths: Paths) -> Paths:
    code, _, err = pull(paths, REPO, "--endpoint", upstream.url)
    assert code == 0, err
    return paths


def _checks(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_offline_guard_loads_and_enforces(pulled: Paths, tmp_path: Path,
                                          expected_ids: list[int]) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(malicious_pickle(marker))
    env = isolated_env(tmp_path)
    proc = run_cli(["run", "--manifest", str(pulled.manifest), "--store", str(pulled.store),
                    "--hf-cache", str(tmp_path / "view"), "--", sys.executable,
                    str(HERE / "guard_checks.py"), "guard", REPO, str(evil)], env)
    out = _checks(proc)
    assert out["config"] == "bert"
    assert out["tokenizer"] == expected_ids
    assert out["model"] == "BertModel"
    assert isinstance(out["checks"], int) and out["checks"] >= 4  # files hashed before use
    assert str(out["torch_unsafe"]).startswith("raised GuardViolation: guard-unsafe-load")
    assert out["torch_default"] == 1.0  # forced weights_only still loads plain tensors
    assert str(out["torch_malicious"]).startswith("raised UnpicklingError")
    assert not marker.exists()
    assert "guard-unsafe-load" in str(out["no_safetensors"])
    assert "guard-remote-code" in str(out["remote_code_bound"])
    assert "guard-remote-code" in str(out["remote_code_module"])
    assert out["env"] == {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
                          "DISABLE_SAFETENSORS_CONVERSION": "1"}


def test_guard_refuses_a_tampered_file(pulled: Paths, tmp_path: Path) -> None:
    sha = load(pulled.manifest).models[REPO].files["model.safetensors"].sha256
    blob = pulled.store / "blobs" / "sha256" / sha[:2] / sha[2:]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    proc = run_cli(["run", "--manifest", str(pulled.manifest), "--store", str(pulled.store),
                    "--hf-cache", str(tmp_path / "view"), "--", sys.executable,
                    str(HERE / "guard_checks.py"), "plain", REPO], isolated_env(tmp_path))
    out = _checks(proc)
    assert out["config"] == "bert"  # untouched files still load
    assert str(out["model"]).startswith("raised GuardViolation: guard-hash-mismatch")


def test_guard_fails_closed_without_manifest(tmp_path: Path) -> None:
    from mlwarden.guard import run_environment

    env = run_environment(isolated_env(tmp_path), tmp_path / "missing.yaml", None, None, None)
    proc = subprocess.run([sys.executable, "-c", "print('ran')"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 70 and "ran" not in proc.stdout
    assert "cannot install the load guard" in proc.stderr


def test_hf_endpoint_at_registry_after_pull(pulled: Paths, tmp_path: Path,
                                            expected_ids: list[int]) -> None:
    """HF_ENDPOINT pointed at `mlwarden serve` over the pulled store: unmodified clients
    load the model; the Hub is unreachable (proxies point at a closed port)."""
    store = Store.open(pulled.store, create=False)
    live = serve_registry(store)
    try:
        env = isolated_env(tmp_path, HF_ENDPOINT=live.url)
        proc = subprocess.run([sys.executable, str(HERE / "guard_checks.py"), "plain", REPO],
                              env=env, capture_output=True, text=True, timeout=240)
        out = _checks(proc)
        assert out == {"config": "bert", "tokenizer": expected_ids, "model": "BertModel"}
        # The guard in registry mode verifies the downloaded cache files too.
        proc = run_cli(["run", "--manifest", str(pulled.manifest), "--endpoint", live.url,
                        "--", sys.executable, str(HERE / "guard_checks.py"), "guard", REPO],
                       isolated_env(tmp_path / "second"))
        out = _checks(proc)
        assert out["model"] == "BertModel"
        assert isinstance(out["checks"], int) and out["checks"] >= 4
    finally:
        live.stop()
        store.close()
