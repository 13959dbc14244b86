"""Fixtures for the registry tests: a tiny real transformers model and live servers on
loopback (uvicorn in a thread). Client code runs in subprocesses (see support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corpus.models import make_tiny_model
from mlwarden.store import Store
from mlwarden.store.blobs import BlobBackend, open_blobs
from registry.services import S3_ENV, Moto, start_moto, stop
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



@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's standalone S3 server (one per test worker), with test credentials in the
    environment of this process and of every process it starts."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in S3_ENV.items():
            mp.setenv(k, v)
        for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            mp.delenv(k, raising=False)
        server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
        try:
            yield server
        finally:
            stop(server.proc)


@pytest.fixture
def s3_url(moto: Moto) -> str:
    """A fresh bucket; the URL carries the endpoint the way an operator would pass it."""
    return f"s3://{moto.bucket()}/store?endpoint={moto.endpoint}"


@pytest.fixture(params=["filesystem", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobBackend]:
    """Each blob backend in turn, empty."""
    url = request.getfixturevalue("s3_url") if request.param == "s3" else tmp_path / "blobs"
    backend = open_blobs(url)
    yield backend
    backend.close()


@pytest.fixture(params=["fs-sqlite", "s3-postgres"])
def store_backend(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once on the embedded default (local blobs, SQLite) and once on shared
    infrastructure (S3 through moto, PostgreSQL). Every ``Store.open`` in the test, and in
    every process it starts, picks the backends up from MLWARDEN_DB / MLWARDEN_BLOBS."""
    monkeypatch.delenv("MLWARDEN_DB", raising=False)
    monkeypatch.delenv("MLWARDEN_BLOBS", raising=False)
    if request.param == "s3-postgres":
        monkeypatch.setenv("MLWARDEN_DB", request.getfixturevalue("postgres_url"))
        monkeypatch.setenv("MLWARDEN_BLOBS", request.getfixturevalue("s3_url"))
    return str(request.param)
