"""Policy changes after admission: a tightened version constraint, a newly bundled advisory,
a deny-list entry or a name that became internal withdraws files the index admitted
earlier. They stop being listed, are never served by direct URL, show in `index pending`
with the reason, and every change is in the audit log."""

from __future__ import annotations

import dataclasses
import json
import shutil

import httpx
import pytest

from index.conftest import policy_text
from index.support import authed, installed, pip_install
from index.test_crash import serve
from index.test_scenarios import run, version_installed
from mlwarden.approvals import read_log
from mlwarden.deps import advisories
from mlwarden.index.model import State
from mlwarden.index.policy import Policy
from mlwarden.index.service import IndexService
from mlwarden.store import Store

JSON = "application/vnd.pypi.simple.v1+json"
LIBC2 = "libc-2.0-py3-none-any.whl"
LIBB1 = "libb-1.0-py3-none-any.whl"


def listed(idx, project: str) -> set[str]:
    r = httpx.get(f"{idx.url}{project}/", auth=("__token__", idx.read_token),
                  headers={"Accept": JSON}, timeout=30)
    assert r.status_code == 200, r.text
    return {f["filename"] for f in r.json()["files"]}


def fetch(idx, project: str, filename: str, method: str = "GET") -> httpx.Response:
    return httpx.request(method, f"{idx.base}/packages/{project}/{filename}",
                         auth=("__token__", idx.read_token), timeout=30)


def pending(idx) -> dict[str, dict]:
    code, out = run("index", *idx.cli("pending", "--format", "json"))
    assert code == 0, out
    return {f["path"]: f for f in json.loads(out)["files"]}


def audit(idx, action: str, path: str) -> list:
    idx.flush()
    return [e for e in idx.store.audit(action=action) if e.path == path]


def test_tightened_version_constraint_withdraws_an_admitted_file(make_index, tmp_path):
    idx = make_index()
    url = authed(idx.url, idx.read_token)
    assert pip_install(tmp_path, url, "libc").returncode == 0
    assert version_installed(tmp_path, "libc") == "2.0"
    assert LIBC2 in listed(idx, "libc")

    idx.set_policy('\n[versions]\nlibc = "<2"\n')
    # Not listed any more; the older release is offered instead, and pip picks it.
    assert listed(idx, "libc") == {"libc-1.0-py3-none-any.whl"}
    # Never served by direct URL either: file, HEAD and PEP 658 metadata.
    for method, name in (("GET", LIBC2), ("HEAD", LIBC2), ("GET", LIBC2 + ".metadata")):
        r = fetch(idx, "libc", name, method)
        assert r.status_code == 403, (method, name, r.status_code)
    assert "index-version-excluded" in fetch(idx, "libc", LIBC2).text
    r = pip_install(tmp_path, url, "libc==2.0")
    assert r.returncode != 0
    for t in tmp_path.glob("target-*"):
        shutil.rmtree(t)
    r = pip_install(tmp_path, url, "libc")
    assert r.returncode == 0, installed(r)
    assert version_installed(tmp_path, "libc") == "1.0"
    # Visible: pending shows it with the reason; the audit log has the change and the
    # refused direct download.
    held = pending(idx)
    assert held[LIBC2]["state"] == "suspended" and held[LIBC2]["action"] == "refused"
    assert [x["rule"] for x in held[LIBC2]["findings"]] == ["index-version-excluded"]
    (sus,) = audit(idx, "pkg-suspend", LIBC2)
    assert "index-version-excluded" in sus.detail and sus.repo == "pkg:libc"
    assert audit(idx, "pkg-denied", LIBC2)
    # `index lock` pins only what is served.
    reqs = tmp_path / "req.in"
    reqs.write_text("libc\n")
    code, out = run("index", *idx.cli("lock", str(reqs)))
    assert code == 0 and "libc==1.0" in out and "libc==2.0" not in out

    # The constraint is a refusal: keeping the file needs --override, and is logged as an
    # exception in the signed approval log.
    code, out = run("index", *idx.cli("approve", "libc==2.0", "--by", "alice"))
    assert code == 4 and "--override" in out
    code, out = run("index", *idx.cli("approve", "libc==2.0", "--override", "--by", "alice",
                                      "--note", "pinned by the trainer image"))
    assert code == 0, out
    assert LIBC2 in listed(idx, "libc") and fetch(idx, "libc", LIBC2).status_code == 200
    assert LIBC2 not in pending(idx)
    (entry,) = [e for e in read_log(idx.store)
                if e.subject == f"pypi:{LIBC2}" and e.details["decision"] == "keep"]
    assert entry.kind == "exception" and entry.actor == "alice"


def test_loosened_policy_gives_files_back(make_index, tmp_path):
    idx = make_index()
    assert pip_install(tmp_path, authed(idx.url, idx.read_token), "libc").returncode == 0
    idx.set_policy('\n[projects]\ndeny = ["libc"]\n')
    assert fetch(idx, "libc", LIBC2).status_code == 403
    assert pending(idx)[LIBC2]["findings"][0]["rule"] == "index-project-not-allowed"
    # `pending` judges with the policy it is given, and records nothing: only the serving
    # process writes suspensions and their audit entries.
    other = tmp_path / "other.toml"
    other.write_text(policy_text(idx.upstream_url))
    code, out = run("index", "pending", "--store", str(idx.store_path), "--policy", str(other),
                    "--format", "json")
    assert code == 0 and LIBC2 not in {f["path"] for f in json.loads(out)["files"]}
    assert LIBC2 in idx.service.storage.suspensions() and not audit(idx, "pkg-reinstate", LIBC2)
    idx.set_policy("")
    assert LIBC2 in listed(idx, "libc") and fetch(idx, "libc", LIBC2).status_code == 200
    assert LIBC2 not in pending(idx)
    assert len(audit(idx, "pkg-suspend", LIBC2)) == 1
    assert len(audit(idx, "pkg-reinstate", LIBC2)) == 1


def _with_advisory(db: advisories.AdvisoryDB, ident: str, package: str,
                   fixed: str) -> advisories.AdvisoryDB:
    new = advisories.Advisory(ident, (), package, f"test advisory {ident}",
                              (("introduced", "0"), ("fixed", fixed)))
    return dataclasses.replace(db, advisories=(*db.advisories, new))


def test_newly_bundled_advisory_holds_an_admitted_file(make_index, tmp_path, monkeypatch):
    idx = make_index()
    assert pip_install(tmp_path, authed(idx.url, idx.read_token), "libb").returncode == 0
    bundled = advisories.bundled()
    # A newer mlwarden bundles an advisory for libb < 2.
    newer = _with_advisory(bundled, "PYSEC-TEST-1", "libb", "2.0")
    monkeypatch.setattr(advisories, "bundled", lambda: newer)
    idx.service.revalidate()  # what `serve` does at start
    assert listed_or_404(idx, "libb") == set()
    r = fetch(idx, "libb", LIBB1)
    assert r.status_code == 403 and "PYSEC-TEST-1" in r.text
    held = pending(idx)
    assert held[LIBB1]["action"] == "held"
    assert held[LIBB1]["findings"][0]["rule"] == "index-advisory"
    assert "PYSEC-TEST-1" in audit(idx, "pkg-suspend", LIBB1)[0].detail
    # A hold: a reviewer keeps it without --override (an "approval" in the log).
    code, out = run("index", *idx.cli("approve", "libb==1.0", "--note", "not exploitable"))
    assert code == 0, out
    assert fetch(idx, "libb", LIBB1).status_code == 200
    # The review covered that advisory only: the next one withdraws the file again.
    newest = _with_advisory(newer, "PYSEC-TEST-2", "libb", "2.0")
    monkeypatch.setattr(advisories, "bundled", lambda: newest)
    r = fetch(idx, "libb", LIBB1)
    assert r.status_code == 403 and "PYSEC-TEST-2" in r.text and "PYSEC-TEST-1" not in r.text
    assert len(audit(idx, "pkg-suspend", LIBB1)) == 2


def listed_or_404(idx, project: str) -> set[str]:
    r = httpx.get(f"{idx.url}{project}/", auth=("__token__", idx.read_token),
                  headers={"Accept": JSON}, timeout=30)
    return set() if r.status_code == 404 else {f["filename"] for f in r.json()["files"]}


def test_name_that_became_internal_is_final(tmp_path, upstream, store_config):
    store = Store.open(tmp_path / "s")
    svc = IndexService(store, Policy.from_dict({"upstream": {"url": upstream.url},
                                                "releases": {"minimum-age": "0"}}))
    assert svc.file_for_download("libb", LIBB1).served
    svc.policy = Policy.from_dict({"upstream": {"url": upstream.url},
                                   "internal": {"names": ["lib*"]}})
    before = len(upstream.proxy.paths)
    ((_, s),) = svc.revalidate()
    assert s.filename == LIBB1 and s.state is State.REFUSED
    assert s.findings[0].rule == "index-dependency-confusion"
    assert svc.listing("libb").files == ()
    with pytest.raises(Exception, match="withdraws"):
        svc.file_for_download("libb", LIBB1)
    with pytest.raises(Exception, match="cannot be kept"):
        svc.approve("libb==1.0", override=True)
    assert len(upstream.proxy.paths) == before  # an internal name is never asked upstream
    # Refusing it settles it: no longer pending, never served.
    svc.refuse("libb==1.0", note="public copy of an internal name")
    assert svc.revalidate() == [] and svc.storage.suspensions() == {}
    svc.close()
    store.close()


def test_serve_rechecks_admitted_files_at_start(tmp_path, upstream, store_config):
    store_path = tmp_path / "store"
    store = Store.open(store_path)
    svc = IndexService(store, Policy.from_dict({"upstream": {"url": upstream.url},
                                                "releases": {"minimum-age": "0"}}))
    assert svc.file_for_download("libc", LIBC2).served
    svc.close()
    store.close()
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text(upstream.url, '\n[versions]\nlibc = "<2"\n'))
    proc, _ = serve(store_path, policy, None)
    try:
        store = Store.open(store_path)
        # Recorded before the first request: the operator sees it in the audit log.
        entries = [e for e in store.audit(action="pkg-suspend") if e.path == LIBC2]
        assert entries and "index-version-excluded" in entries[0].detail
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
