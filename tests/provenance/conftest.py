"""Session fixtures: signing keys and a private CA, the base model, and one real training
run under `mlwarden attest` that most provenance tests verify (or tamper with a copy of)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpus.pki import Pki, make_pki
from provenance.support import Trained, make_base_model, make_workspace, train_under_attest


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("prov-pki"))


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    make_base_model(home)
    return home


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, hf_home: Path, keys: Pki) -> Trained:
    ws = make_workspace(tmp_path_factory.mktemp("train") / "ws")
    return train_under_attest(ws, hf_home, keys.key)


@pytest.fixture
def model_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the trained model (with its provenance.json) to tamper with."""
    dst = tmp_path / "model"
    shutil.copytree(trained.model, dst)
    return dst
