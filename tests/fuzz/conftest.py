"""Fuzz-test fixtures: seeds written by the real libraries, and the HDF5 sandbox timeout
shortened so that a contained libhdf5 hang costs a second, not twenty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzz.seeds import Seed, build_seeds
from mlwarden.scan.readers import hdf5_file


@pytest.fixture(scope="session")
def light_seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Seed]:
    """Every seed that does not need torch/joblib/dill (fast to build)."""
    return build_seeds(tmp_path_factory.mktemp("seeds"), light=True)


@pytest.fixture(autouse=True)
def _short_hdf5_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hdf5_file, "CHILD_TIMEOUT", 1.0)
    yield


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    d = tmp_path / "case"
    d.mkdir()
    return d
