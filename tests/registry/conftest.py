"""Fixtures for the registry tests: a tiny real transformers model and live servers on
loopback (uvicorn in a thread). Client code runs in subprocesses (see support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corpus.models import make_tiny_model
from mlwarden.store import Store
from mlwarden.store.blobs import BlobBackend, open_blobs
from registry.support import LiveServer, start_server


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-bert")


@pytest.fixture
def live() -> Iterator[Callable[..., LiveServer]]:
    """Factory: start a server for a store; stopped at the end of the test."""
    started: list[LiveServer] = []

    def factory(store: Store, **kw: object) -> LiveServer:
        s = start_server(store, **kw)  # type: ignore[arg-type]
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()



@pytest.fixture(params=["filesystem"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobBackend]:
    """Each blob backend in turn, empty."""
    backend = open_blobs(tmp_path / "blobs")
    yield backend
    backend.close()
