"""The write API against hostile or broken requests (plain HTTP, no client library)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from push.support import PushServer


def _ndjson(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def _header(msg: str = "m", **kw: Any) -> dict[str, Any]:
    return {"key": "header", "value": {"summary": msg, "description": "", **kw}}


def _file(path: str, data: bytes) -> dict[str, Any]:
    return {"key": "file", "value": {"content": base64.b64encode(data).decode(), "path": path,
                                     "encoding": "base64"}}


@pytest.fixture
def srv(serve) -> PushServer:  # type: ignore[no-untyped-def]
    s: PushServer = serve(upload_mode="lfs", multipart_threshold=1 << 20,
                          multipart_chunk=512 << 10)
    token = s.token("dev", "acme:write")
    r = httpx.post(f"{s.url}/api/repos/create", json={"name": "m", "organization": "acme"},
                   headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    s.dev = token  # type: ignore[attr-defined]
    return s


def _commit(srv: PushServer, body: bytes, rev: str = "main", token: str | None = None,
            **params: str) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/models/acme/m/commit/{rev}", content=body, params=params,
                      headers={"authorization": f"Bearer {token or srv.dev}",  # type: ignore[attr-defined]
                               "content-type": "application/x-ndjson"}, timeout=60)


def test_bad_commit_bodies(srv: PushServer) -> None:
    head = srv.store.resolve("acme/m", "main").id
    cases = [
        (b"", 400, "empty"),
        (b"{not json\n", 400, "malformed"),
        (_ndjson(_file("a.txt", b"x")), 400, "header"),
        (_ndjson(_header(), {"key": "rename", "value": {"path": "a"}}), 400, "unsupported"),
        (_ndjson(_header(), _file("../etc/passwd", b"x")), 400, "'..'"),
        (_ndjson(_header(), _file("a\\b", b"x")), 400, "backslash"),
        (_ndjson(_header(), {"key": "file", "value": {"content": "!!!!", "path": "a"}}), 400,
         "base64"),
        (_ndjson(_header(), {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256",
                                                        "oid": "a" * 64, "size": 3}}), 422,
         "was not uploaded"),
        (_ndjson(_header(), {"key": "deletedFile", "value": {"path": "nope.txt"}}), 404,
         "doesn't exist"),
        (_ndjson(_header(parentCommit="b" * 40), _file("a.txt", b"x")), 412, "parentCommit"),
        (_ndjson(_header("")), 400, "summary"),
        (b'{"key": "header", "value": {"summary": "m", "summary": "n"}}\n', 400, "duplicate"),
        (b"[" * 50, 400, "nested"),
    ]
    for body, status, text in cases:
        r = _commit(srv, body)
        assert r.status_code == status and text in r.headers.get("x-error-message", ""), (
            body[:60], r.status_code, r.text)
    assert srv.store.resolve("acme/m", "main").id == head
    assert [c.message for c in srv.store.commits("acme/m")] == ["initial commit"]
    assert not any((srv.store.tmp / "quarantine" / "incoming").iterdir())
    r = _commit(srv, _ndjson(_header(), _file("a.txt", b"x")), rev="v9")
    assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound"


def test_access_rules(srv: PushServer) -> None:
    body = _ndjson(_header(), _file("a.txt", b"x"))
    r = httpx.post(f"{srv.url}/api/models/acme/m/commit/main", content=body)
    assert r.status_code == 401
    reader = srv.token("reader", "acme:read")
    r = _commit(srv, body, token=reader)
    assert r.status_code == 403 and "no write access" in r.headers["x-error-message"]
    other = srv.token("other", "other:write")
    r = _commit(srv, body, token=other)
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
    r = httpx.post(f"{srv.url}/api/repos/create", json={"name": "z", "organization": "acme"},
                   headers={"authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    r = httpx.request("DELETE", f"{srv.url}/api/repos/delete",
                      json={"name": "m", "organization": "acme"},
                      headers={"authorization": f"Bearer {srv.dev}"})  # type: ignore[attr-defined]
    assert r.status_code == 403 and srv.store.repo("acme/m") is not None
    r = httpx.post(f"{srv.url}/api/repos/create", json={"name": "d", "type": "dataset",
                                                       "organization": "acme"},
                   headers={"authorization": f"Bearer {srv.dev}"})  # type: ignore[attr-defined]
    assert r.status_code == 400 and "model repositories only" in r.text
    srv.flush_audit()
    assert srv.store.audit(action="push")[-1].status == 404


def _batch(srv: PushServer, data: bytes, transfers: list[str] | None = None) -> dict[str, Any]:
    oid = hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{srv.url}/acme/m.git/info/lfs/objects/batch", json={
        "operation": "upload", "transfers": transfers or ["basic", "multipart"],
        "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"},
        headers={"authorization": f"Bearer {srv.dev}"})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    obj: dict[str, Any] = r.json()["objects"][0]
    return obj


def test_lfs_upload_urls_are_checked(srv: PushServer) -> None:
    data = os.urandom(1000)
    href = _batch(srv, data)["actions"]["upload"]["href"]
    assert httpx.put(href, content=b"y" * 1000).status_code == 422  # wrong bytes: dropped
    assert httpx.put(href.replace("sig=", "sig=0"), content=data).status_code == 403
    assert httpx.put(href.replace("size=1000", "size=999"), content=data).status_code == 403
    assert httpx.put(href, content=data + b"x").status_code == 413
    oid = hashlib.sha256(data).hexdigest()
    assert not (srv.store.tmp / "quarantine" / "lfs" / oid).exists()
    assert httpx.put(href, content=data).status_code == 200
    assert (srv.store.tmp / "quarantine" / "lfs" / oid).exists()
    assert "actions" not in _batch(srv, data)  # already received: nothing more to send
    verify = httpx.post(f"{srv.url}/api/mlwarden/lfs/acme/m/{oid}/verify",
                        json={"oid": oid, "size": 1000},
                        headers={"authorization": f"Bearer {srv.dev}"})  # type: ignore[attr-defined]
    assert verify.status_code == 200
    # A revoked token's URLs stop working.
    info, token = srv.store.create_token("short", ["acme:write"])
    other = os.urandom(10)
    r = httpx.post(f"{srv.url}/acme/m.git/info/lfs/objects/batch", json={
        "operation": "upload", "objects": [{"oid": hashlib.sha256(other).hexdigest(),
                                            "size": 10}]},
        headers={"authorization": f"Bearer {token}"})
    srv.store.revoke_token(info.id)
    assert httpx.put(r.json()["objects"][0]["actions"]["upload"]["href"],
                     content=other).status_code == 403


def test_multipart_checks_parts_and_whole(srv: PushServer) -> None:
    data = os.urandom((1 << 20) + 12345)  # 3 parts of 512 KiB
    obj = _batch(srv, data)
    up = obj["actions"]["upload"]
    chunk = int(up["header"]["chunk_size"])
    parts = [up["header"][str(n)] for n in range(1, 4)]
    etags = []
    for n, url in enumerate(parts):
        r = httpx.put(url, content=data[n * chunk:(n + 1) * chunk])
        assert r.status_code == 200
        etags.append(r.headers["etag"])
    assert httpx.put(parts[0], content=b"x" * (chunk + 1)).status_code == 413
    bad = {"oid": obj["oid"], "parts": [{"partNumber": i + 1, "etag": "0" * 64}
                                        for i in range(3)]}
    assert httpx.post(up["href"], json=bad).status_code == 422
    short = {"oid": obj["oid"], "parts": [{"partNumber": 1, "etag": etags[0]}]}
    assert httpx.post(up["href"], json=short).status_code == 422
    done = {"oid": obj["oid"], "parts": [{"partNumber": i + 1, "etag": e}
                                         for i, e in enumerate(etags)]}
    r = httpx.post(up["href"], json=done)
    assert r.status_code == 200, r.text
    assert (srv.store.tmp / "quarantine" / "lfs" / obj["oid"]).exists()
    # The commit refers to it; a pickle-free binary blob is unscannable: refused, and the
    # verified upload is dropped with it.
    r = _commit(srv, _ndjson(_header(), {"key": "lfsFile", "value": {
        "path": "blob.bin", "algo": "sha256", "oid": obj["oid"], "size": len(data)}}))
    assert r.status_code == 422 and "policy-scan-unscannable" in r.headers["x-error-message"]
    assert not (srv.store.tmp / "quarantine" / "lfs" / obj["oid"]).exists()


def test_quarantine_sweep(srv: PushServer, tmp_path: Path) -> None:
    from mlwarden.registry.api.quarantine import Quarantine

    q = Quarantine(srv.store, 1 << 20)
    w = q.new_file()
    w.write(b"abc")
    kept = w.finish()
    old = q.new_file()
    old.write(b"x")
    stale = old.finish()
    past = time.time() - 10 * 86400
    os.utime(stale.path, (past, past))
    assert q.sweep(7 * 86400) == 1 and kept.path.exists() and not stale.path.exists()
