"""The HTTP surface with a plain client: headers, ranges, access control, hardening."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.registry.app import Settings
from mlwarden.registry.server import ServerLimits
from mlwarden.store import Store
from mlwarden.store.hashing import git_blob_sha1

REPO = "acme/model"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text('{"hidden_size": 32}\n')
    (src / "weights.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB, LFS
    (src / "sub" / "notes.txt").write_text("notes\n")
    s = Store.open(tmp_path / "store")
    s.commit_directory(src, REPO, tags=["v1"], approve=True, author="t")
    s.commit_directory(src, "other/model", approve=True, author="t")
    s.commit_directory(src, "acme/unapproved", author="t")
    return s


@pytest.fixture
def token(store: Store) -> str:
    return store.create_token("reader", ["acme:read"])[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_resolve_headers_match_hub_conventions(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store)
    head = store.resolve(REPO, "main").id
    with httpx.Client(base_url=srv.url, headers=auth(token)) as c:
        r = c.head(f"/{REPO}/resolve/main/config.json")
        assert r.status_code == 200
        assert r.headers["x-repo-commit"] == head
        body = b'{"hidden_size": 32}\n'
        assert r.headers["etag"] == f'"{git_blob_sha1(body)}"'  # git blob sha1, non-LFS
        assert "x-linked-etag" not in r.headers and r.headers["content-length"] == "20"
        r = c.head(f"/{REPO}/resolve/v1/weights.bin")
        data = bytes(range(256)) * 4096
        assert r.headers["x-linked-etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert r.headers["x-linked-size"] == str(len(data))
        assert not any(k.lower().startswith("x-xet") for k in r.headers)
        assert c.get(f"/{REPO}/resolve/{head}/weights.bin").content == data


def test_ranges(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store)
    data = bytes(range(256)) * 4096
    url = f"/{REPO}/resolve/main/weights.bin"
    with httpx.Client(base_url=srv.url, headers=auth(token)) as c:
        r = c.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        r = c.get(url, headers={"Range": "bytes=1048000-"})
        assert r.status_code == 206 and r.content == data[1048000:]
        r = c.get(url, headers={"Range": "bytes=-5"})
        assert r.status_code == 206 and r.content == data[-5:]
        r = c.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
        for bad in ("bytes=5-2", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=-",
                    "bytes=99999999999999999999-"):
            assert c.get(url, headers={"Range": bad}).status_code in (400, 416), bad
    srv.flush_audit()
    ranged = [e for e in store.audit(action="download") if e.status == 206]
    assert sorted(e.bytes for e in ranged) == [5, 10, len(data) - 1048000]


def test_access_control(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store)
    with httpx.Client(base_url=srv.url) as c:
        # No token, bad token, revoked token: 401 with RepoNotFound (no existence leak).
        for headers in ({}, auth("mlw_000000000000_" + "A" * 43), auth("garbage")):
            r = c.get(f"/api/models/{REPO}", headers=headers)
            assert r.status_code == 401 and r.headers["x-error-code"] == "RepoNotFound"
        # Out of scope, unapproved and nonexistent look exactly alike.
        answers = [c.get(f"/api/models/{rid}", headers=auth(token))
                   for rid in ("other/model", "acme/unapproved", "acme/nothing")]
        assert {(r.status_code, r.headers["x-error-code"], r.text) for r in answers} == \
            {(404, "RepoNotFound", '{"error":"Repository not found"}')}
        assert c.get(f"/{REPO}/resolve/main/config.json", headers=auth(token)).status_code == 200
        # An org scope does not leak into a similarly named org.
        assert store.revoke_token("reader") == 1
        assert c.get(f"/api/models/{REPO}", headers=auth(token)).status_code == 401
    srv.flush_audit()
    denied = store.audit(action="denied")
    assert {e.repo for e in denied} >= {"other/model", "acme/unapproved"}
    assert all(e.client == "127.0.0.1" for e in denied)


def test_expired_token_and_star_scope(store: Store, live) -> None:  # type: ignore[no-untyped-def]
    _, expired = store.create_token("old", ["*:read"], expires_at=time.time() - 1)
    _, star = store.create_token("all", ["*:read"])
    _, single = store.create_token("one", ["other/model:read"])
    srv = live(store)
    with httpx.Client(base_url=srv.url) as c:
        assert c.get(f"/api/models/{REPO}", headers=auth(expired)).status_code == 401
        assert c.get(f"/api/models/{REPO}", headers=auth(star)).status_code == 200
        assert c.get("/api/models/other/model", headers=auth(single)).status_code == 200
        assert c.get(f"/api/models/{REPO}", headers=auth(single)).status_code == 404


def test_anonymous_mode_and_gating(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store, settings=Settings(allow_anonymous=True))
    with httpx.Client(base_url=srv.url) as c:
        assert c.get(f"/api/models/{REPO}").status_code == 200
        # A huggingface.co token sent implicitly is ignored, not an error.
        assert c.get(f"/api/models/{REPO}", headers=auth("hf_abcdef")).status_code == 200
        assert c.get("/api/models/acme/unapproved").status_code == 404
        store.set_gated(REPO, True, "admin")
        r = c.get(f"/api/models/{REPO}")
        assert r.status_code == 401 and r.headers["x-error-code"] == "GatedRepo"
        assert c.get(f"/api/models/{REPO}", headers=auth(token)).status_code == 200
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError

    with pytest.raises(GatedRepoError):
        HfApi(endpoint=srv.url, token=False).model_info(REPO)


@pytest.mark.parametrize("path", [
    "/acme/model/resolve/main/..%2F..%2Fmeta.db",
    "/acme/model/resolve/main/../../meta.db",
    "/acme/model/resolve/main/%2e%2e/%2e%2e/meta.db",
    "/acme/model/resolve/main/sub%5C..%5Cconfig.json",
    "/acme/model/resolve/main/sub\\notes.txt",
    "/acme/model/resolve/main/%2Fetc%2Fpasswd",
    "/acme/model/resolve/main//etc/passwd",
    "/acme/model/resolve/main/config.json%00",
    "/acme/model/resolve/%2e%2e/config.json",
    "/%2e%2e/model/resolve/main/config.json",
    "/acme/..%2F..%2Fblobs/resolve/main/config.json",
    "/api/models/acme/model/tree/main/..%2F..",
    "/acme/model/resolve/main/%ff%fe",
])
def test_traversal_gets_clean_4xx(store: Store, token: str, live, path: str) -> None:  # type: ignore[no-untyped-def]
    srv = live(store)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                  "Connection: close\r\n\r\n".encode("latin-1"))
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    status = int(raw.split(b" ", 2)[1])
    assert 400 <= status < 500, raw[:300]
    assert b"SQLite" not in raw and b"root:" not in raw


def test_oversized_requests(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store)
    with httpx.Client(base_url=srv.url, headers=auth(token)) as c:
        assert c.get("/" + "a" * 9000).status_code == 414
        r = c.post(f"/api/models/{REPO}/paths-info/main", content=b"paths=" + b"x" * (2 << 20))
        assert r.status_code == 413
        r = c.post(f"/api/models/{REPO}/paths-info/main",
                   data={"paths": [f"f{i}" for i in range(1500)]})
        assert r.status_code == 400
        assert c.request("DELETE", f"/api/models/{REPO}").status_code == 405
        r = c.get(f"/api/models/{REPO}", headers={"X-Big": "v" * 20000})
        assert r.status_code == 431  # request head above the bound


def test_slow_client_is_cut_off(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store, limits=ServerLimits(header_timeout=1.0, keep_alive=1))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"GET /api/models/acme/model HTTP/1.1\r\n")
        raw = b""
        try:
            for _ in range(40):  # trickle a header byte every 0.1 s
                s.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass
        try:
            while chunk := s.recv(4096):
                raw += chunk
        except OSError:
            pass
        elapsed = time.monotonic() - started
    assert raw.startswith(b"HTTP/1.1 408"), raw[:200]
    assert elapsed < 6


def test_paths_info_and_tree_pagination(store: Store, token: str, live) -> None:  # type: ignore[no-untyped-def]
    srv = live(store, settings=Settings(tree_page_size=2))
    with httpx.Client(base_url=srv.url, headers=auth(token)) as c:
        r = c.post(f"/api/models/{REPO}/paths-info/v1",
                   data={"paths": ["config.json", "sub", "missing", "../x"], "expand": "true"})
        assert r.status_code == 200
        got = {e["path"]: e for e in r.json()}
        assert set(got) == {"config.json", "sub"}
        assert got["config.json"]["lastCommit"]["id"] == store.resolve(REPO, "v1").id
        r = c.get(f"/api/models/{REPO}/tree/main", params={"recursive": "true"})
        seen = [e["path"] for e in r.json()]
        while "link" in r.headers:
            nxt = r.headers["link"].split(";")[0].strip("<>")
            r = c.get(nxt)
            seen += [e["path"] for e in r.json()]
        assert sorted(seen) == ["config.json", "sub", "sub/notes.txt", "weights.bin"]
        r = c.get(f"/api/models/{REPO}/tree/main/sub%2Fmissing")
        assert r.status_code == 404 and r.headers["x-error-code"] == "EntryNotFound"
        r = c.get(f"/api/models/{REPO}/tree/main/sub")
        assert [e["path"] for e in r.json()] == ["sub/notes.txt"]
        refs = c.get(f"/api/models/{REPO}/refs", params={"include_prs": 1}).json()
        assert refs["tags"][0]["name"] == "v1" and refs["pullRequests"] == []


def test_client_disconnect_is_audited_with_bytes_sent(tmp_path: Path, live) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "big"
    src.mkdir()
    (src / "w.bin").write_bytes(b"\0" * (64 << 20))
    store = Store.open(tmp_path / "store")
    store.commit_directory(src, REPO, approve=True, author="t")
    token = store.create_token("t", ["*:read"])[1]
    srv = live(store)
    with httpx.Client(base_url=srv.url, headers=auth(token)) as c, \
            c.stream("GET", f"/{REPO}/resolve/main/w.bin") as r:
        next(r.iter_bytes(1 << 20))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        srv.flush_audit()
        entries = store.audit(action="download")
        if entries:
            break
        time.sleep(0.1)
    assert entries and 0 < entries[0].bytes < (64 << 20)


def test_mounted_routes_come_first_and_declare_their_methods(store: Store, token: str) -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from mlwarden.registry.app import create_app

    async def upload(request: Request) -> PlainTextResponse:
        reg = request.app.state.registry  # access control and the store, for mounted routes
        body = await request.body()
        return PlainTextResponse(f"{reg.store is store} {len(body)}")

    app = create_app(store, routes=[Route("/api/upload/{name}", upload, methods=["PUT"])])
    with TestClient(app) as c:
        r = c.put("/api/upload/x", content=b"\0" * (2 << 20))  # over the read API's 1 MiB
        assert r.status_code == 200 and r.text == f"True {2 << 20}"
        assert c.put("/api/models/acme/model", content=b"x").status_code == 405
        assert c.get(f"/{REPO}/resolve/main/config.json",
                     headers=auth(token)).status_code == 200
