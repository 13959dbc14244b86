"""Fixtures for the push (write API) and review console tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corpus.models import make_tiny_model
from mlwarden.store import Store
from push.support import PushServer, start


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-bert")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., PushServer]]:
    """Factory: a store in tmp_path served with the write API; stopped afterwards."""
    started: list[PushServer] = []

    def factory(**write: object) -> PushServer:
        from mlwarden.registry.api import WriteSettings

        store = Store.open(tmp_path / f"store{len(started)}")
        s = start(store, WriteSettings(**write))  # type: ignore[arg-type]
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()
