"""The index logic without HTTP: concurrent admissions, PostgreSQL, policy files."""

from __future__ import annotations

import json
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


def test_concurrent_downloads_admit_once(tmp_path, upstream, store_config):
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


def test_internal_and_upstream_files_on_each_store(tmp_path, upstream, store_config):
    store = Store.open(tmp_path / "s")
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
                         ("not toml [", "invalid TOML"),
                         ("[upstream]\nmax-file-bytes = 'abc'\n", "max-file-bytes"),
                         ("[upstream]\nmax-file-bytes = -1\n", "max-file-bytes")]:
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


def test_lock_rejects_a_bad_python_version_in_one_line(tmp_path):
    reqs = tmp_path / "r.in"
    reqs.write_text("libb\n")
    Store.open(tmp_path / "s").close()
    for bad in ("abc", "3"):
        r = CliRunner().invoke(cli, ["index", "lock", str(reqs), "--store", str(tmp_path / "s"),
                                     "--python-version", bad])
        assert r.exit_code == 4 and "--python-version" in r.output, r.output
        assert "Traceback" not in r.output


def test_upstream_credentials_never_leave_the_index(tmp_path, upstream):
    """A private upstream configured as https://user:token@host/simple/: the token is sent
    to the upstream, and never shown to clients, in findings or in the audit log."""
    from mlwarden.index.confusion import sweep
    from mlwarden.index.service import IndexError_

    url = upstream.url.replace("http://", "http://mirror:s3cret-token@")
    store = Store.open(tmp_path / "s")
    svc = IndexService(store, Policy.from_dict({"upstream": {"url": url},
                                                "internal": {"names": ["acme-*"]},
                                                "releases": {"minimum-age": "0"}}))
    assert svc.file_for_download("libb", "libb-1.0-py3-none-any.whl").served
    report = sweep(svc)
    assert report.files and "s3cret" not in json.dumps(report.meta)
    upstream.proxy.down = True
    try:
        with pytest.raises(IndexError_) as err:
            svc.file_for_download("libc", "libc-1.0-py3-none-any.whl")
    finally:
        upstream.proxy.down = False
    assert err.value.status == 503 and "127.0.0.1" in err.value.message
    messages = [err.value.message, *(f.message for r in report.files for f in r.findings),
                *(e.detail for e in store.audit())]
    assert not [m for m in messages if "s3cret" in m]
    svc.close()
    store.close()
