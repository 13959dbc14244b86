"""``mlwarden serve`` itself: several workers on one port, zero-copy sends."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mlwarden.registry.app import Settings
from mlwarden.store import Store
from registry.services import start_replica

REPO = "acme/m"


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out.update(int(x) for x in fh.read().split())
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.bin").write_bytes(os.urandom(5 << 20))
    (src / "config.json").write_text("{}\n")
    s = Store.open(tmp_path / "store")
    s.commit_directory(src, REPO, approve=True, author="t")
    return s


def test_workers_share_the_port_and_a_dead_worker_is_replaced(store: Store,
                                                              tmp_path: Path) -> None:
    _, token = store.create_token("ci", ["acme:read"])
    srv = start_replica(["--store", str(store.root), "--workers", "2"], tmp_path / "serve.log")
    auth = {"Authorization": f"Bearer {token}"}
    want = hashlib.sha256((tmp_path / "src" / "w.bin").read_bytes()).hexdigest()

    def fetch(_: int) -> str:
        r = httpx.get(f"{srv.url}/{REPO}/resolve/main/w.bin", headers=auth, timeout=60)
        assert r.status_code == 200
        return hashlib.sha256(r.content).hexdigest()

    try:
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(fetch, range(16))) == {want}
        # /metrics on whichever worker answers adds up every worker's counts.
        text = httpx.get(f"{srv.url}/metrics").text
        assert 'mlwarden_registry_requests_total{action="download",status="200"} 16.0' in text
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            now = _children(srv.proc.pid)
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, f"no replacement worker: {now}"
            time.sleep(0.1)
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(fetch, range(8))) == {want}
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    assert not any(os.path.exists(f"/proc/{w}") and
                   open(f"/proc/{w}/stat").read().split()[2] != "Z" for w in workers)


def test_local_blobs_are_sent_with_sendfile(store: Store, live,  # type: ignore[no-untyped-def]
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import mlwarden.registry.responses as responses

    _, token = store.create_token("ci", ["acme:read"])
    data = store.db.read("SELECT sha256, size FROM files WHERE path = 'w.bin'")[0]

    def no_pread(*a: object) -> bytes:
        raise AssertionError("file bytes went through Python")

    monkeypatch.setattr(responses.os, "pread", no_pread)
    auth = {"Authorization": f"Bearer {token}"}
    srv = live(store)
    r = httpx.get(f"{srv.url}/{REPO}/resolve/main/w.bin", headers=auth)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == data[0]
    r = httpx.get(f"{srv.url}/{REPO}/resolve/main/w.bin",
                  headers={**auth, "Range": "bytes=1000-1999"})
    assert r.status_code == 206 and len(r.content) == 1000
    deadline = time.monotonic() + 10
    while len(store.audit(action="download")) < 2 and time.monotonic() < deadline:
        srv.flush_audit()  # the entry is queued once the last byte left
        time.sleep(0.05)
    assert sorted(e.bytes for e in store.audit(action="download")) == [1000, data[1]]
    # Without the zero-copy path, the same request would have needed pread.
    plain = live(store, settings=Settings(sendfile=False))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain.url}/{REPO}/resolve/main/w.bin", headers=auth).raise_for_status()
