"""Fixtures for remote scanning: the real `mlwarden serve` app on loopback over a store."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray instance with 2 CPUs for the whole session (``ray.init`` costs
    seconds). Yields a directory that does not exist yet: creating it arms the test-only
    worker kill (``MLWARDEN_TEST_KILL_WORKER``), which Ray's workers inherit."""
    ray = pytest.importorskip("ray")
    armed = tmp_path_factory.mktemp("ray") / "armed"
    env = {"MLWARDEN_TEST_KILL_WORKER": str(armed / "killed"), "RAY_DISABLE_USAGE_STATS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    finally:
        for k, v in saved.items():  # the driver itself never kills itself
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield armed
    ray.shutdown()
