"""The store: content addressing, commits, approval and ref moves, tokens, concurrency."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.store import ConflictError, InvalidName, RevisionNotFound, Store, StoreError
from mlwarden.store.hashing import git_blob_sha1

# Every test here runs on local files + SQLite and on S3 + PostgreSQL.
pytestmark = pytest.mark.usefixtures("store_backend")


def read_blob(store: Store, sha: str) -> bytes:
    with store.open_blob(sha) as r:
        return r.read()


def make_dir(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def test_blobs_are_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "a", {"config.json": b"{}\n", "w.safetensors": b"\0" * 100,
                                    "copy.json": b"{}\n"})
    store = Store.open(tmp_path / "s")
    c = store.commit_directory(src, "org/m", author="t")
    files = {f.path: f for f in store.files("org/m", c.id)}
    sha = hashlib.sha256(b"{}\n").hexdigest()
    assert files["config.json"].sha256 == sha == files["copy.json"].sha256
    if store.blobs.kind == "filesystem":
        assert store.blobs.local_path(sha) == \
            tmp_path / "s" / "blobs" / "sha256" / sha[:2] / sha[2:]
    assert read_blob(store, sha) == b"{}\n"
    assert len(list(store.blobs.iter_all())) == 2
    assert files["config.json"].git_oid == git_blob_sha1(b"{}\n") and not files["config.json"].lfs
    assert files["w.safetensors"].lfs and files["w.safetensors"].etag == \
        hashlib.sha256(b"\0" * 100).hexdigest()
    assert not list(store.blobs.iter_uploads())  # nothing left half-written
    # Source changes after import do not reach the stored blob (copied, not linked).
    (src / "config.json").write_bytes(b"changed")
    assert read_blob(store, sha) == b"{}\n"


def test_commit_ids_are_deterministic_and_chain(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "a", {"x.txt": b"x"})
    store = Store.open(tmp_path / "s")
    c1 = store.commit_directory(src, "org/m", message="m", author="t", created_at=1000.0)
    again = store.commit_directory(src, "org/m", message="m", author="t", created_at=1000.0)
    assert again.id == c1.id  # same content, parent, author, time, message: same id
    store.approve("org/m", c1.id)
    c2 = store.commit_directory(src, "org/m", message="m2", author="t", created_at=1001.0)
    assert c2.parent == c1.id and c2.id != c1.id and len(c2.id) == 40
    with pytest.raises(ConflictError):
        store.commit_files([], "org/m", branch="main", message="", author="t", commit_id=c1.id)


def test_approval_moves_branch_and_tags_and_is_logged(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "a", {"x.txt": b"x"})
    store = Store.open(tmp_path / "s")
    c1 = store.commit_directory(src, "org/m", tags=["stable"], author="t")
    assert store.visible_repo("org/m") is None and store.refs("org/m") == []
    with pytest.raises(RevisionNotFound):
        store.resolve("org/m", c1.id)
    store.approve("org/m", c1.id[:10], actor="alice", note="reviewed")
    assert store.resolve("org/m", "main").id == c1.id
    assert store.resolve("org/m", "stable").id == c1.id
    (src / "x.txt").write_bytes(b"y")
    c2 = store.commit_directory(src, "org/m", author="t")
    assert store.resolve("org/m", "main").id == c1.id  # unapproved: branch stays
    store.approve("org/m", c2.id, actor="bob", tags=["stable"])
    assert store.resolve("org/m", "stable").id == c2.id
    log = [(e.action, e.ref, e.previous, e.actor) for e in store.approvals("org/m")]
    assert ("move-tag", "stable", c1.id, "bob") in log
    assert ("approve", None, None, "alice") in log
    store.revoke("org/m", c2.id, actor="carol")
    with pytest.raises(RevisionNotFound):
        store.resolve("org/m", "stable")
    assert {r.name for r in store.refs("org/m")} == set()  # both point at c2 now
    with pytest.raises(ConflictError):
        store.approve("org/m", c1.id, tags=["main"])  # a branch cannot become a tag
    with pytest.raises(RevisionNotFound, match="awaiting approval"):
        store.approve("org/m", "nope")


@pytest.mark.parametrize("bad", ["../x", "org", "org/na/me", "org/..", "-org/x", "a--b/c"])
def test_invalid_repo_ids(tmp_path: Path, bad: str) -> None:
    src = make_dir(tmp_path / "a", {"x.txt": b"x"})
    with pytest.raises(InvalidName):
        Store.open(tmp_path / "s").commit_directory(src, bad)


def test_symlinks_are_refused(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "a", {"x.txt": b"x"})
    os.symlink("/etc/passwd", src / "passwd")
    with pytest.raises(StoreError, match="symbolic link"):
        Store.open(tmp_path / "s").commit_directory(src, "org/m")


def test_client_metadata_dirs_are_skipped(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "a", {"x.txt": b"x", ".git/HEAD": b"ref",
                                    ".cache/huggingface/download/x.txt.metadata": b"m"})
    store = Store.open(tmp_path / "s")
    c = store.commit_directory(src, "org/m")
    assert [f.path for f in store.files("org/m", c.id)] == ["x.txt"]


def test_staging_move_promotes_quarantine(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with store.staging() as q:
        make_dir(q, {"a/b.txt": b"hello"})
        c = store.commit_directory(q, "org/m", move=True, commit_id="a" * 40, approve=True)
        assert not (q / "a" / "b.txt").exists()  # renamed into the store, not copied
    assert c.id == "a" * 40 and store.resolve("org/m", "a" * 40).approved
    assert read_blob(store, hashlib.sha256(b"hello").hexdigest()) == b"hello"


def test_tokens_are_hashed_and_verified(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    info, text = store.create_token("ci", ["acme:read", "other/m:read"])
    assert store.verify_token(text) == info
    assert store.verify_token(text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    secret = text.split("_", 2)[2]  # the secret itself may contain "_"
    assert secret not in repr(store.db.read("SELECT * FROM tokens"))  # only a salted hash
    if store.db.dialect == "sqlite":
        assert secret.encode() not in (tmp_path / "s" / "meta.db").read_bytes()
    assert info.can_read("acme/x") and info.can_read("other/m") and not info.can_read("other/n")
    assert not info.can_read("acme2/x")
    with pytest.raises(InvalidName):
        store.create_token("x", ["acme:delete"])
    assert store.revoke_token(info.id) == 1 and store.verify_token(text) is None


IMPORT_SCRIPT = """
import sys
from mlwarden.store import Store

s = Store.open(sys.argv[1])
for i in range(int(sys.argv[4])):
    s.commit_directory(__import__('pathlib').Path(sys.argv[2]), sys.argv[3],
                       message=f"{sys.argv[3]} {i}", author=sys.argv[5], approve=True)
"""


def test_concurrent_imports_from_two_processes(tmp_path: Path) -> None:
    a = make_dir(tmp_path / "a", {f"f{i}.txt": f"a{i}".encode() for i in range(20)})
    b = make_dir(tmp_path / "b", {f"f{i}.txt": f"b{i}".encode() for i in range(20)})
    store_dir = tmp_path / "s"
    Store.open(store_dir).close()
    procs = [subprocess.Popen([sys.executable, "-c", IMPORT_SCRIPT, str(store_dir), str(src),
                               repo, "8", who], stderr=subprocess.PIPE, text=True)
             for src, repo, who in ((a, "org/m", "p1"), (b, "org/m", "p2"),
                                    (a, "org/n", "p3"))]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = Store.open(store_dir)
    commits = store.commits("org/m")
    assert len(commits) == 16 and len({c.id for c in commits}) == 16
    assert len(store.commits("org/n")) == 8
    head = store.resolve("org/m", "main")
    assert {f.path for f in store.files("org/m", head.id)} == {f"f{i}.txt" for i in range(20)}
    for c in commits:
        for f in store.files("org/m", c.id):
            assert hashlib.sha256(read_blob(store, f.sha256)).hexdigest() == f.sha256
    assert sum(1 for e in store.approvals("org/m") if e.action == "approve") == 16


def test_postgres_backend(tmp_path: Path, postgres_url: str) -> None:
    store = Store.open(tmp_path / "s", postgres_url)
    src = make_dir(tmp_path / "a", {"x.txt": os.urandom(8).hex().encode()})
    repo = f"pg/m{os.getpid()}"
    c = store.commit_directory(src, repo, approve=True, author="t", tags=["v1"])
    assert store.resolve(repo, "v1").id == c.id
    _, tok = store.create_token("pg", [f"{repo}:read"])
    assert store.verify_token(tok) is not None


def test_bad_database_url(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        Store.open(tmp_path / "s", "mysql://x")


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_named_locks_exclude_across_connections(tmp_path: Path, db: str,
                                                request: pytest.FixtureRequest) -> None:
    from mlwarden.store.coordination import LockTimeout

    url = request.getfixturevalue("postgres_url") if db == "postgresql" \
        else f"sqlite:///{tmp_path}/s/meta.db"
    a = Store.open(tmp_path / "s", url)
    b = Store.open(tmp_path / "s", url)  # another "host": its own connections
    assert a.coordination.kind == ("postgresql" if db == "postgresql" else "file")
    with a.lock("promote:org/m"):
        with pytest.raises(LockTimeout):
            with b.lock("promote:org/m", timeout=0.3):
                pass
        with b.lock("promote:org/other", timeout=1):  # other names do not conflict
            pass
    with b.lock("promote:org/m", timeout=1):
        pass

