"""Stateless replicas: two ``mlwarden serve`` processes (each with its own, empty local
directory) share one PostgreSQL database and one S3 bucket, behind a real nginx."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlwarden.store import Store
from registry.services import Nginx, Replica, lb_config, start_nginx, start_replica
from registry.support import HERE, client_env

REPO = "acme/tiny-bert"
BIG = 48 << 20


@dataclass
class Cluster:
    admin: Store
    token: str
    replicas: list[Replica]
    nginx: Nginx
    model: Path
    tmp: Path

    def audit(self, **kw: object) -> list:  # type: ignore[type-arg]
        return self.admin.audit(**kw)  # type: ignore[arg-type]


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def cluster(tmp_path: Path, tiny_model: Path, postgres_url: str, s3_url: str
            ) -> Iterator[Cluster]:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    block = os.urandom(1 << 20)
    with open(model / "big.bin", "wb") as fh:  # large enough to be mid-flight when killed
        for i in range(BIG >> 20):
            fh.write(block[i:] + block[:i])
    admin = Store.open(tmp_path / "admin", postgres_url, blobs_url=s3_url)
    admin.commit_directory(model, REPO, approve=True, author="admin")
    _, token = admin.create_token("ci", ["acme:read"])
    replicas: list[Replica] = []
    nginx = None
    try:
        for i in range(2):
            replicas.append(start_replica(
                ["--store", str(tmp_path / f"host{i}"), "--db", postgres_url,
                 "--forwarded-allow-ips", "127.0.0.1", "--redirect-min-size", "off"],
                tmp_path / f"replica{i}.log"))
        # 16 MB/s per connection: the large file is in flight for seconds. nginx ignores
        # limit_rate when it does not buffer, so it buffers, in memory only (no temp file):
        # the replica is then read at the client's pace.
        config = lb_config([r.port for r in replicas], extra="limit_rate 16m;").replace(
            "proxy_buffering off;",
            "proxy_buffering on; proxy_max_temp_file_size 0; proxy_buffers 4 64k;")
        nginx = start_nginx(tmp_path / "nginx", config)
        yield Cluster(admin, token, replicas, nginx, model, tmp_path)
    finally:
        if nginx is not None:
            nginx.stop()
        for r in replicas:
            r.stop()
        admin.close()


def test_a_replica_killed_mid_download_loses_no_client(cluster: Cluster) -> None:
    env = client_env(cluster.tmp / "client", cluster.nginx.url, cluster.token)
    proc = subprocess.Popen([sys.executable, str(HERE / "hub_download.py"), "snapshot", REPO],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for r in cluster.replicas:
            if _metric(r.url, "mlwarden_registry_downloads_in_flight") > 0 and \
                    _metric(r.url, "mlwarden_registry_response_bytes_total") < BIG:
                r.proc.send_signal(signal.SIGKILL)  # no graceful anything
                killed = r
                break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=240)
    assert killed is not None, "no replica was caught serving the large file"
    assert killed.proc.wait(10) == -signal.SIGKILL
    assert proc.returncode == 0, err[-3000:]
    files = json.loads(out.split("RESULT ", 1)[1])["files"]
    want = {str(p.relative_to(cluster.model)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in cluster.model.rglob("*") if p.is_file()}
    assert files == want  # every file, byte for byte, the large one resumed elsewhere
    survivor = next(r for r in cluster.replicas if r is not killed)
    assert httpx.get(f"{survivor.url}/readyz").json()["ready"] is True


def test_revocation_reaches_every_replica_within_the_bound(cluster: Cluster) -> None:
    urls = [f"{r.url}/api/models/{REPO}" for r in cluster.replicas]
    auth = {"Authorization": f"Bearer {cluster.token}"}
    assert [httpx.get(u, headers=auth).status_code for u in urls] == [200, 200]
    assert cluster.admin.revoke_token("ci") == 1
    revoked_at = time.monotonic()
    refused: dict[str, float] = {}
    while len(refused) < len(urls) and time.monotonic() - revoked_at < 10:
        for u in urls:
            if u not in refused and httpx.get(u, headers=auth).status_code == 401:
                refused[u] = time.monotonic() - revoked_at
        time.sleep(0.02)
    assert len(refused) == 2 and max(refused.values()) <= 5.0, refused
    # Withdrawn approval: the same bound, on every replica.
    _, token = cluster.admin.create_token("ci2", ["acme:read"])
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 5
    while any(httpx.get(u, headers=auth).status_code != 200 for u in urls):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cluster.admin.revoke(REPO, "main", actor="admin")
    started = time.monotonic()
    while any(httpx.get(u, headers=auth).status_code != 404 for u in urls):
        assert time.monotonic() - started <= 5.0
        time.sleep(0.02)


def test_audit_records_the_real_client_behind_the_load_balancer(cluster: Cluster) -> None:
    auth = {"Authorization": f"Bearer {cluster.token}"}
    # A client on 127.0.0.2 (loopback is a /8) reaches nginx; nginx (127.0.0.1, trusted)
    # appends it to X-Forwarded-For. A forged entry in front of it changes nothing.
    via_lb = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    r = via_lb.get(f"{cluster.nginx.url}/{REPO}/resolve/main/config.json",
                   headers={**auth, "X-Forwarded-For": "203.0.113.66"})
    assert r.status_code == 200
    # Straight to a replica from an untrusted address: its X-Forwarded-For is ignored.
    direct = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
    r = direct.get(f"{cluster.replicas[0].url}/{REPO}/resolve/main/README.md",
                   headers={**auth, "X-Forwarded-For": "198.51.100.9"})
    assert r.status_code in (200, 404)
    deadline = time.monotonic() + 10
    while True:
        entries = [e for e in cluster.audit(repo=REPO) if e.method in ("GET", "HEAD")]
        if len(entries) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    by_path = {e.path: e for e in entries}
    assert by_path["config.json"].client == "127.0.0.2"
    assert "via 127.0.0.1" in by_path["config.json"].detail
    assert by_path["config.json"].actor.startswith("token:ci/")
    assert by_path["README.md"].client == "127.0.0.3"


def test_replica_health_readiness_and_metrics(cluster: Cluster) -> None:
    r = cluster.replicas[0]
    assert httpx.get(f"{r.url}/healthz").text == "ok"
    ready = httpx.get(f"{r.url}/readyz").json()
    assert ready == {"ready": True, "database": "ok", "blobs": "ok", "draining": False}
    auth = {"Authorization": f"Bearer {cluster.token}"}
    httpx.get(f"{r.url}/{REPO}/resolve/main/config.json", headers=auth)
    httpx.get(f"{r.url}/api/models/{REPO}")  # no token: denied
    text = httpx.get(f"{r.url}/metrics").text
    assert 'mlwarden_registry_requests_total{action="download",status="200"}' in text
    assert 'mlwarden_registry_denials_total{reason="unauthenticated"}' in text
    assert _metric(r.url, "mlwarden_registry_response_bytes_total") > 0
    assert "mlwarden_registry_request_duration_seconds_bucket" in text


def test_imports_from_two_hosts_share_only_postgres_and_s3(
        tmp_path: Path, postgres_url: str, s3_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each importer has its own local directory (another host); all they share is the
    database and the bucket. Commits to the same branch chain without loss."""
    from registry.test_store import IMPORT_SCRIPT, make_dir, read_blob

    monkeypatch.setenv("MLWARDEN_DB", postgres_url)
    monkeypatch.setenv("MLWARDEN_BLOBS", s3_url)
    a = make_dir(tmp_path / "a", {f"f{i}.bin": os.urandom(2048) for i in range(6)})
    b = make_dir(tmp_path / "b", {f"f{i}.bin": os.urandom(2048) for i in range(6)})
    procs = [subprocess.Popen([sys.executable, "-c", IMPORT_SCRIPT, str(tmp_path / host),
                               str(src), "org/shared", "6", host], stderr=subprocess.PIPE,
                              text=True)
             for host, src in (("host1", a), ("host2", b))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    store = Store.open(tmp_path / "host3")  # a third host sees everything
    commits = store.commits("org/shared")
    assert len(commits) == 12 and len({c.id for c in commits}) == 12
    assert len({c.parent for c in commits}) == 12  # one chain, no lost update
    for c in commits:
        for f in store.files("org/shared", c.id):
            assert hashlib.sha256(read_blob(store, f.sha256)).hexdigest() == f.sha256
    assert not (tmp_path / "host1" / "blobs").exists()  # nothing on a local disk
