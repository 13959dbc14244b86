"""Bytes sent by someone else, access decided and audited here: presigned redirects to
object storage (the Hub's CDN pattern) and X-Accel-Redirect behind nginx."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from mlwarden.registry.app import Settings
from mlwarden.store import Store
from registry.services import start_nginx
from registry.support import client_env, run_client

REPO = "acme/tiny-bert"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_entries(store: Store, srv, n: int = 1, **kw: object) -> list:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + 10
    while True:
        srv.flush_audit()
        entries = store.audit(**kw)  # type: ignore[arg-type]
        if len(entries) >= n or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


# ----------------------------------------------------------------------------- S3


@pytest.fixture
def s3_store(tmp_path: Path, tiny_model: Path, s3_url: str) -> Store:
    store = Store.open(tmp_path / "store", blobs_url=s3_url)
    store.commit_directory(tiny_model, REPO, approve=True, author="t")
    return store


def test_head_and_get_redirect_to_a_presigned_url(s3_store: Store, tiny_model: Path,
                                                  live) -> None:  # type: ignore[no-untyped-def]
    _, token = s3_store.create_token("ci", ["acme:read"])
    srv = live(s3_store, settings=Settings(redirect_min_size=0, presign_ttl=120))
    weights = (tiny_model / "model.safetensors").read_bytes()
    head = s3_store.resolve(REPO, "main").id
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=srv.url) as c:
        for method in ("HEAD", "GET"):
            r = c.request(method, f"/{REPO}/resolve/main/model.safetensors", headers=auth)
            assert r.status_code == 302, method
            # What huggingface_hub reads from the redirect answer itself:
            assert r.headers["x-repo-commit"] == head
            assert r.headers["x-linked-etag"] == f'"{sha(weights)}"'
            assert r.headers["x-linked-size"] == str(len(weights))
            location = r.headers["location"]
            assert "X-Amz-Signature=" in location and "X-Amz-Expires=120" in location
            assert token not in location and "Authorization" not in r.headers
        # The URL works alone (no registry token), with ranges, for the short while.
        assert httpx.get(location).content == weights
        part = httpx.get(location, headers={"Range": "bytes=8-23"})
        assert part.status_code == 206 and part.content == weights[8:24]
        # Small, non-LFS files are still answered directly.
        r = c.get(f"/{REPO}/resolve/main/config.json", headers=auth)
        assert r.status_code == 200 and r.content == (tiny_model / "config.json").read_bytes()
        # No rights, no URL.
        r = c.get(f"/{REPO}/resolve/main/model.safetensors")
        assert r.status_code == 401 and "location" not in r.headers
    grants = audit_entries(s3_store, srv, 2, action="download")
    presigned = [e for e in grants if "presigned" in e.detail]
    assert presigned and presigned[0].status == 302 and presigned[0].actor.startswith("token:ci")
    assert any(e.action == "resolve" and "presigned" in e.detail
               for e in s3_store.audit(repo=REPO))


def test_transformers_loads_over_the_s3_redirect(s3_store: Store, tiny_model: Path,
                                                 tmp_path: Path, live) -> None:  # type: ignore[no-untyped-def]
    _, token = s3_store.create_token("ci", ["acme:read"])
    srv = live(s3_store, settings=Settings(redirect_min_size=0))
    env = client_env(tmp_path / "client", srv.url, token)
    proc = run_client("hub_download.py", env, "transformers", REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert got["shape"][-1] > 0
    assert got["weights_sha256"] == sha((tiny_model / "model.safetensors").read_bytes())
    entries = audit_entries(s3_store, srv, 3, repo=REPO)
    weights = [e for e in entries if e.path == "model.safetensors"]
    # The weights came from object storage through the redirect, never through us.
    assert weights and all("presigned" in e.detail and e.bytes == 0 for e in weights)


# ----------------------------------------------------------------------------- nginx

XACCEL = """worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {
    listen 127.0.0.1:{port};
    location / {
      proxy_pass http://127.0.0.1:UPSTREAM;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
    location /_mlwarden/blobs/ {
      internal;
      alias BLOBS/;
      types { } default_type application/octet-stream;
      etag off;
      add_header ETag $upstream_http_etag always;
      add_header X-Repo-Commit $upstream_http_x_repo_commit always;
      add_header X-Linked-Etag $upstream_http_x_linked_etag always;
      add_header X-Linked-Size $upstream_http_x_linked_size always;
    }
  }
}
"""


def test_x_accel_redirect_behind_nginx(tmp_path: Path, tiny_model: Path, live) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "model"
    shutil.copytree(tiny_model, src)
    big = os.urandom(3 << 20)
    (src / "big.bin").write_bytes(big)
    store = Store.open(tmp_path / "store")
    store.commit_directory(src, REPO, approve=True, author="t")
    _, token = store.create_token("ci", ["acme:read"])
    srv = live(store, settings=Settings(delivery="x-accel"))
    blob_dir = store.blobs.blob_root  # type: ignore[attr-defined]
    nginx = start_nginx(tmp_path / "nginx", XACCEL.replace("UPSTREAM", str(srv.port))
                        .replace("BLOBS", str(blob_dir)))
    auth = {"Authorization": f"Bearer {token}"}
    head = store.resolve(REPO, "main").id
    try:
        with httpx.Client(base_url=nginx.url) as c:
            r = c.get(f"/{REPO}/resolve/main/big.bin", headers=auth)
            assert r.status_code == 200 and r.content == big
            assert r.headers["x-repo-commit"] == head
            assert r.headers["etag"] == f'"{sha(big)}"' == r.headers["x-linked-etag"]
            assert r.headers["x-linked-size"] == str(len(big))
            assert "x-accel-redirect" not in r.headers
            r = c.get(f"/{REPO}/resolve/main/big.bin", headers={**auth, "Range": "bytes=5-9"})
            assert r.status_code == 206 and r.content == big[5:10]
            assert r.headers["content-range"] == f"bytes 5-9/{len(big)}"
            r = c.head(f"/{REPO}/resolve/main/big.bin", headers=auth)
            assert r.headers["x-linked-size"] == str(len(big))
            assert c.get(f"/{REPO}/resolve/main/big.bin").status_code == 401
            sha_big = sha(big)
            assert c.get(f"/_mlwarden/blobs/{sha_big[:2]}/{sha_big[2:]}").status_code == 404
        env = client_env(tmp_path / "client", nginx.url, token)
        proc = run_client("hub_download.py", env, "snapshot", REPO)
        assert proc.returncode == 0, proc.stderr[-3000:]
        files = json.loads(proc.stdout.split("RESULT ", 1)[1])["files"]
        assert files["big.bin"] == sha(big)
        assert files["model.safetensors"] == sha((src / "model.safetensors").read_bytes())
    finally:
        nginx.stop()
    sent = [e for e in audit_entries(store, srv, 2, action="download") if e.path == "big.bin"]
    assert {(e.status, e.bytes) for e in sent} >= {(200, len(big)), (206, 5)}
    assert all("x-accel" in e.detail for e in sent)
