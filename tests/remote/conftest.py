"""Fixtures for remote scanning: the real `mlwarden serve` app on loopback over a store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.support import Live, serve_app
from mlwarden.registry.app import Settings, create_app
from mlwarden.store import Store


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Store, Callable[..., Live]]]:
    """(store, start): ``start(wrap=None)`` serves the store, optionally through an ASGI
    wrapper (fault injection), and returns the live server."""
    store = Store.open(tmp_path / "store")
    lives: list[Live] = []

    def start(wrap: Callable[[Any], Any] | None = None) -> Live:
        app = create_app(store, Settings(allow_anonymous=True))
        live = serve_app(wrap(app) if wrap else app)
        lives.append(live)
        return live

    yield store, start
    for live in lives:
        live.stop()
    store.close()
