"""Fixtures for the airlock tests: a tiny real model in a real upstream registry on
loopback, a fake Hub that can lie, and a fresh store/manifest/scan cache per test."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock.hostile import HostileHub
from airlock.support import Live, serve_app, serve_registry
from corpus.models import make_tiny_model
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store

REPO = "acme/tiny-bert"


@dataclass
class Upstream:
    url: str
    store: Store
    commit: str
    model_dir: Path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-bert")


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Upstream]:
    """The real registry (`mlwarden serve` app) serving acme/tiny-bert (main + tag v1)."""
    store = Store.open(tmp_path_factory.mktemp("upstream") / "store")
    result = import_directory(store, tiny_model, REPO, tags=["v1"], approve=True,
                              message="tiny model")
    assert result.commit is not None
    live = serve_registry(store)
    yield Upstream(live.url, store, result.commit.id, tiny_model)
    live.stop()


@dataclass
class Paths:
    store: Path
    manifest: Path
    cache: Path
    root: Path


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "store", tmp_path / "model-manifest.yaml", tmp_path / "scan-cache",
                 tmp_path)


@pytest.fixture
def hostile() -> Iterator[Callable[..., Live]]:
    started: list[Live] = []

    def factory(hub: HostileHub) -> Live:
        live = serve_app(hub.app())
        started.append(live)
        return live

    yield factory
    for live in started:
        live.stop()


class _Payload:
    """Harmless payload: unpickling it would only create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def malicious_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)}, protocol=4)


def model_files(tiny_model: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(tiny_model.iterdir()) if p.is_file()}
