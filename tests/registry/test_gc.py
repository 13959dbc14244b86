"""``store gc``: only unreferenced blobs go, and never one an import is still writing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlwarden.cli.main import cli
from mlwarden.store import Store, StoreError
from mlwarden.store.gc import collect

pytestmark = pytest.mark.usefixtures("store_backend")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def orphan(store: Store, data: bytes) -> str:
    """A blob left by an import that never committed (its session ended)."""
    with store.ingest() as session:
        return session.put_stream(io.BytesIO(data), "x.bin").sha256


def test_gc_removes_only_unreferenced_blobs_past_the_grace_period(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    c = store.commit_directory(make_dir(tmp_path / "a", {"keep.txt": b"keep"}), "org/m",
                               approve=True)
    store.commit_directory(make_dir(tmp_path / "b", {"pending.txt": b"pending"}), "org/m")
    lost = orphan(store, b"orphan bytes")
    assert {b.sha256 for b in store.blobs.iter_all()} == {sha(b"keep"), sha(b"pending"), lost}

    young = collect(store, grace=3600)
    assert young.removed == () and young.young == 1 and young.referenced == 2
    dry = collect(store, grace=0, dry_run=True)
    assert [b.sha256 for b in dry.removed] == [lost] and store.blobs.exists(lost)
    done = collect(store, grace=0)
    assert [b.sha256 for b in done.removed] == [lost] and not store.blobs.exists(lost)
    assert store.blobs.exists(sha(b"keep")) and store.blobs.exists(sha(b"pending"))
    assert [f.sha256 for f in store.files("org/m", c.id)] == [sha(b"keep")]


def test_leases_and_registered_roots_protect_blobs(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with store.ingest() as session:  # an import still running: scanning, say
        inflight = session.put_stream(io.BytesIO(b"being imported"), "w.bin").sha256
        assert collect(store, grace=0).removed == ()
        assert store.blobs.exists(inflight)
        store.commit_files([], "org/empty", branch="main", message="", author="t")
    assert collect(store, grace=0).removed[0].sha256 == inflight  # never committed

    # Another component's table of references, registered as a gc root.
    other = orphan(store, b"an index file")
    with store.db.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS idx_files (sha256 TEXT NOT NULL)")
        tx.execute("INSERT INTO idx_files (sha256) VALUES (?)", (other,))
        tx.execute("INSERT INTO blob_roots (name, tbl, col) VALUES ('index', 'idx_files', "
                   "'sha256') ON CONFLICT (name) DO NOTHING")
    assert collect(store, grace=0).removed == () and store.blobs.exists(other)
    with store.db.transaction() as tx:
        tx.execute("DROP TABLE idx_files")
    with pytest.raises(StoreError, match="cannot know what it references"):
        collect(store, grace=0)
    assert store.blobs.exists(other)  # unsure: nothing removed


def test_stale_uploads_and_staging_dirs_go_live_ones_stay(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    if store.blobs.kind == "filesystem":
        stale = store.blobs.uploads / "in-crashed"  # type: ignore[attr-defined]
        stale.write_bytes(b"half a blob")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
    else:  # an abandoned multipart upload
        client = store.blobs._client  # type: ignore[attr-defined]
        client.create_multipart_upload(Bucket=store.blobs.bucket,  # type: ignore[attr-defined]
                                       Key=store.blobs.key("a" * 64))  # type: ignore[attr-defined]
    store.tmp.mkdir(parents=True, exist_ok=True)
    dead = store.tmp / "stage-dead"
    dead.mkdir()
    (dead / "w.bin").write_bytes(b"x")
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    with store.staging() as live:
        os.utime(live, (time.time() - 7200, time.time() - 7200))
        res = collect(store, grace=3600, upload_grace=0 if store.blobs.kind == "s3" else 3600)
        assert len(res.uploads) == 1 and res.stages == ("stage-dead",)
        assert live.is_dir() and not dead.exists()
    assert list(store.blobs.iter_uploads()) == []


def test_gc_command_dry_run_and_json(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    lost = orphan(store, b"gone soon")
    runner = CliRunner()
    r = runner.invoke(cli, ["store", "gc", "--store", str(tmp_path / "s"), "--grace", "0",
                            "--dry-run"])
    assert r.exit_code == 0 and lost[:16] in r.stdout and "would remove 1 blob" in r.stderr
    assert store.blobs.exists(lost)
    r = runner.invoke(cli, ["store", "gc", "--store", str(tmp_path / "s"), "--grace", "0",
                            "--format", "json"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and [b["sha256"] for b in doc["removed"]] == [lost]
    assert not store.blobs.exists(lost)


IMPORTER = """
import os, sys, pathlib
from mlwarden.store import Store
root, workdir, who, n = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = Store.open(root)
for i in range(n):
    d = workdir / f"{who}-{i}"
    d.mkdir(parents=True)
    # Content that gc sees as an unreferenced, old blob until this very commit lands.
    (d / "shared.bin").write_bytes(b"orphan %d" % i)
    (d / "own.bin").write_bytes(os.urandom(64) + who.encode())
    s.commit_directory(d, f"org/{who}", message=str(i), author=who, approve=i % 2 == 0)
print("done", flush=True)
"""

GC_LOOP = """
import pathlib, sys
from mlwarden.store import Store
from mlwarden.store.coordination import LockTimeout
from mlwarden.store.gc import collect
s, stop, removed, runs = Store.open(sys.argv[1]), pathlib.Path(sys.argv[2]), 0, 0
while not stop.exists() or runs < 3:
    try:
        removed += len(collect(s, grace=0).removed)
        runs += 1
    except LockTimeout:
        pass
print("gc", runs, removed, flush=True)
"""


def test_gc_racing_imports_never_removes_a_referenced_blob(tmp_path: Path) -> None:
    """Two importers commit content that starts out as unreferenced, old blobs (the
    dangerous deduplication case) while gc runs back to back with no grace at all."""
    root = tmp_path / "s"
    store = Store.open(root)
    n = 12
    orphans = {orphan(store, b"orphan %d" % i) for i in range(n)}
    assert all(store.blobs.exists(o) for o in orphans)
    stop = tmp_path / "stop"
    gc = subprocess.Popen([sys.executable, "-c", GC_LOOP, str(root), str(stop)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    importers = [subprocess.Popen([sys.executable, "-c", IMPORTER, str(root),
                                   str(tmp_path / "work"), who, str(n)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for who in ("p1", "p2")]
    for p in importers:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    stop.touch()
    out, err = gc.communicate(timeout=120)
    assert gc.returncode == 0, err
    runs, _removed = map(int, out.split()[1:3])
    assert runs >= 3
    referenced = {str(r[0]) for r in store.db.read("SELECT DISTINCT sha256 FROM files")}
    assert len(referenced) == n + 2 * n  # shared contents once, plus each importer's own
    for s in referenced:
        with store.open_blob(s) as r:
            assert sha(r.read()) == s, f"referenced blob {s} lost or damaged"
    # And gc does work: what nobody references goes on the next pass.
    extra = orphan(store, b"really unreferenced")
    assert extra in {b.sha256 for b in collect(store, grace=0).removed}
