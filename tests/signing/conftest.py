"""Fixtures for signature tests: locally generated EC keys, a private CA (root ->
intermediate -> leaf, the leaf carrying an e-mail SAN and Fulcio's OIDC-issuer extension),
a small model directory, and a runner for the real ``model_signing`` CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.pki import (  # noqa: F401  (re-exported for the signing tests)
    ISSUER,
    SIGNER,
    Pki,
    _cert,
    _pem,
    _write_key,
    _write_pub,
    make_pki,
)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "tiny-model"
    (m / "sub").mkdir(parents=True)
    (m / "config.json").write_text('{"model_type": "bert"}')
    (m / "model.safetensors").write_bytes(bytes(range(256)) * 20)  # 5120 bytes
    (m / "sub" / "tokenizer.json").write_text('{"version": "1.0"}')
    (m / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    return m


def model_signing_cli(*args: str | Path,
                      cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real model_signing command-line tool."""
    exe = shutil.which("model_signing")
    cmd = [exe] if exe else [sys.executable, "-m", "model_signing"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.fixture(scope="session")
def ms_cli():  # type: ignore[no-untyped-def]
    return model_signing_cli
