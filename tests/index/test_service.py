"""The index logic without HTTP: concurrent admissions, PostgreSQL, policy files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from index.conftest import policy_text
from index.support import wheel
from mlwarden.cli.main import cli
from mlwarden.index.model import State
from mlwarden.index.names import Namespace
from mlwarden.index.policy import Policy, PolicyError
from mlwarden.index.service import IndexService
from mlwarden.store import Store


def test_concurrent_downloads_admit_once(tmp_path, upstream):
    store = Store.open(tmp_path / "s")
    svc = IndexService(store, Policy.from_dict({"upstream": {"url": upstream.url},
                                                "releases": {"minimum-age": "0"}}))
    name = "libc-2.0-py3-none-any.whl"
    svc.listing("libc")
    got: list[str | None] = []

    def one() -> None:
        got.append(svc.file_for_download("libc", name).sha256)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 6 and len(set(got)) == 1 and got[0]
    admits = [e for e in store.audit(action="pkg-admit") if e.path == name]
    assert len(admits) == 1
    svc.close()
    store.close()


def test_postgresql_store(tmp_path, upstream, postgres_url):
    store = Store.open(tmp_path / "pg", postgres_url)
    svc = IndexService(store, Policy.load(_policy(tmp_path, upstream.url)))
    f = svc.add_internal(wheel(tmp_path / "d", "acme-pg", "1.0"), actor="ci")
    assert f.state is State.ADMITTED
    assert svc.listing("acme-pg").files[0].sha256 == f.sha256
    assert svc.file_for_download("libb", "libb-1.0-py3-none-any.whl").served
    assert svc.storage.projects() == ["acme-pg", "libb"]
    svc.close()
    store.close()


def _policy(tmp: Path, url: str, extra: str = "") -> Path:
    p = tmp / "policy.toml"
    p.write_text(policy_text(url, extra))
    return p


def test_policy_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    for text, needle in [("[releases]\nminimum-age = 'soon'\n", "minimum-age"),
                         ("[projects]\nmode = 'some'\n", "mode"),
                         ("[inspection]\nsuspicious = 'maybe'\n", "suspicious"),
                         ("[nonsense]\n", "unknown section"),
                         ("[versions]\nnumpy = '<<2'\n", "numpy"),
                         ("not toml [", "invalid TOML")]:
        bad.write_text(text)
        with pytest.raises(PolicyError, match=needle):
            Policy.load(bad)
        r = CliRunner().invoke(cli, ["index", "pending", "--store", str(tmp_path / "s"),
                                     "--policy", str(bad)])
        assert r.exit_code == 4 and "Traceback" not in r.output


def test_policy_decisions():
    p = Policy.from_dict({"projects": {"mode": "allowlist", "allow": ["requests", "flask-*"]},
                          "internal": {"names": ["acme-*", "Secret_Tool"]}})
    assert p.check_project("requests").state is State.ADMITTED
    assert p.check_project("flask-login").state is State.ADMITTED
    assert p.check_project("numpy").state is State.REFUSED
    ns = Namespace.parse(["acme-*", "Secret_Tool"])
    assert "Acme.Utils" in ns and "secret-tool" in ns and "acmeutils" not in ns
    d = Policy().check_project("reqeusts")
    assert d.state is State.REFUSED and d.findings[0].rule == "index-typosquat"
