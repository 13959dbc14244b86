"""Session fixtures: signing keys and a private CA, the base model, and one real training
run under `mlwarden attest` that most provenance tests verify (or tamper with a copy of).

Under pytest-xdist the workers share them (made once, under a lock, in the directory all
workers' temporary directories live in): a training run costs seconds."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus.pki import PKI_FILES, Pki, make_pki
from mlwarden.util.fs import file_lock
from provenance.support import Trained, make_base_model, make_workspace, train_under_attest


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory shared by all xdist workers of this run, held under a lock while used
    to create things."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    d = root / "provenance-shared"
    d.mkdir(exist_ok=True)
    yield d


@pytest.fixture(scope="session")
def keys(shared: Path) -> Pki:
    with file_lock(shared / ".pki.lock"):
        if (shared / "pki" / "wrong.pem").exists():
            return Pki(**{f: shared / "pki" / n for f, n in PKI_FILES.items()})
        return make_pki(shared / "pki")


@pytest.fixture(scope="session")
def hf_home(shared: Path) -> Path:
    home = shared / "hf-home"
    with file_lock(shared / ".hf.lock"):
        make_base_model(home)
    return home


@pytest.fixture(scope="session")
def trained(shared: Path, hf_home: Path, keys: Pki) -> Trained:
    done = shared / "trained.json"
    with file_lock(shared / ".train.lock"):
        if done.exists():
            doc = json.loads(done.read_text())
            return Trained(Path(doc["workspace"]), doc["commit"], Path(doc["model"]),
                           Path(doc["record"]), Path(doc["hf_home"]), doc["env"])
        ws = shared / "train" / "ws"
        shutil.rmtree(ws.parent, ignore_errors=True)
        t = train_under_attest(make_workspace(ws), hf_home, keys.key)
        done.write_text(json.dumps({"workspace": str(t.workspace), "commit": t.commit,
                                    "model": str(t.model), "record": str(t.record),
                                    "hf_home": str(t.hf_home), "env": t.env}))
        return t


@pytest.fixture
def model_copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the trained model (with its provenance.json) to tamper with."""
    dst = tmp_path / "model"
    shutil.copytree(trained.model, dst)
    return dst
