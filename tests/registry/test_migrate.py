"""``store migrate --to s3://...`` while a replica serves and an importer writes."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from mlwarden.cli.main import cli
from mlwarden.store import Store
from registry.services import start_replica

REPO = "acme/m"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_migrate_to_s3_without_reader_downtime(tmp_path: Path, s3_url: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    files = {"w.bin": os.urandom(12 << 20), "config.json": b'{"a": 1}\n'}
    for name, data in files.items():
        (src / name).write_bytes(data)
    root = tmp_path / "store"
    store = Store.open(root)
    store.commit_directory(src, REPO, approve=True, author="t")
    for i in range(30):  # enough blobs for several copy rounds and parallel copies
        d = tmp_path / f"old{i}"
        d.mkdir()
        (d / "x.txt").write_bytes(b"old %d" % i)
        store.commit_directory(d, f"acme/old{i}", approve=True, author="t")
    _, token = store.create_token("ci", ["acme:read"])
    srv = start_replica(["--store", str(root), "--access-poll", "0.2"], tmp_path / "serve.log")
    auth = {"Authorization": f"Bearer {token}"}
    stop = threading.Event()
    errors: list[str] = []
    served = [0]

    def reader() -> None:
        with httpx.Client(base_url=srv.url, headers=auth, timeout=30,
                          follow_redirects=True) as c:  # to object storage, once moved
            while not stop.is_set():
                for name, data in files.items():
                    try:
                        r = c.get(f"/{REPO}/resolve/main/{name}")
                        if r.status_code != 200 or sha(r.content) != sha(data):
                            errors.append(f"{name}: {r.status_code} {r.text[:200]}")
                        served[0] += 1
                    except httpx.HTTPError as exc:
                        errors.append(f"{name}: {exc!r}")

    def writer() -> None:  # an importer that opened the store before the switch
        w = Store.open(root)
        for i in range(4):
            d = tmp_path / f"new{i}"
            d.mkdir()
            (d / "n.txt").write_bytes(b"during migration %d" % i)
            w.commit_directory(d, "acme/during", approve=True, author="w")
            time.sleep(0.3)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        r = CliRunner().invoke(cli, ["store", "migrate", "--store", str(root), "--to", s3_url,
                                     "--delete-source", "--switch-delay", "2",
                                     "--format", "json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["copied"] >= 33 and doc["deleted_from_source"] >= 33
        threads[1].join(60)
        time.sleep(1)  # keep reading after the source is gone
        stop.set()
        threads[0].join(60)
        assert sorted(set(errors)) == [] and served[0] > 10
    finally:
        stop.set()
        srv.stop()
    after = Store.open(root)
    assert after.blobs.kind == "s3" and after.recorded_blobs_url().startswith("s3://")
    assert list((root / "blobs" / "sha256").rglob("*/*")) == []  # the old copies are gone
    referenced = {str(x[0]) for x in after.db.read("SELECT DISTINCT sha256 FROM files")}
    assert {b.sha256 for b in after.blobs.iter_all()} >= referenced
    assert len(after.commits("acme/during")) == 4  # the writer's commits carried over
    for c in after.commits("acme/during"):
        for f in after.files("acme/during", c.id):
            with after.open_blob(f.sha256) as r:
                assert sha(r.read()) == f.sha256
    r = CliRunner().invoke(cli, ["store", "info", "--store", str(root), "--format", "json"])
    assert json.loads(r.stdout)["blobs"] == "s3"
