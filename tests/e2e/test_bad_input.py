"""Bad input never gives a traceback: one clear line on stderr and exit 4."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from e2e.support import assert_clean_failure, mlw

GARBAGE = bytes(range(256)) * 16


@pytest.fixture
def junk(tmp_path: Path) -> Path:
    (tmp_path / "garbage.bin").write_bytes(GARBAGE)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    return tmp_path


def cases(j: Path) -> list[tuple[str | Path, ...]]:
    g, d, missing = j / "garbage.bin", j / "adir", j / "missing"
    return [
        # usage errors, for the group and for subcommands
        ("--no-such-option",),
        ("no-such-command",),
        ("scan",),
        ("scan", g, "--format", "xml"),
        ("scan", g, "--workers", "-1"),
        ("scan", g, "--fail-on", "sometimes"),
        ("scan", g, "--output", d),            # a directory where a file is expected
        ("lint", g, "--select", "no-such-rule"),
        ("deps", "inspect"),
        ("memory", "exec", j, "--key", j / "k"),  # no command after --
        ("token", "create", "--store", j / "st", "--scope", "a:read", "--expires", "never"),
        ("audit", "--store", j / "st", "--since", "yesterday-ish"),
        # missing paths
        ("scan", missing),
        ("lint", missing),
        ("deps", missing),
        ("deps", "inspect", missing),
        ("doctor", "--site-dir", missing),
        ("memory", "discover", missing),
        ("memory", "check", missing),
        ("approve", "org/m", "main", "--store", missing),
        ("import", missing, "--repo", "org/m", "--store", j / "st"),
        # files where directories are expected, and vice versa
        ("memory", "discover", g),
        ("import", g, "--repo", "org/m", "--store", j / "st"),
        ("import", d, "--repo", "org/m", "--store", g),   # a store that is a file
        ("demo", "--dir", g),
        ("deps", "audit", d, "--advisory-db", d, "--offline"),
        ("memory", "encrypt", d, "--key", j / "k"),
        # binary garbage where text, JSON, TOML or PEM is expected
        ("deps", g),
        ("deps", "inspect", g),
        ("deps", "audit", d, "--advisory-db", g, "--offline"),
        ("memory", "verify", d, "--public-key", g),
        ("memory", "public-key", "--key", g),
        ("deps", "inspect", j / "empty"),
        # invalid names and store locations
        ("import", d, "--repo", "not a repo!", "--store", j / "st"),
        ("import", d, "--repo", "org/m", "--store", "/proc/mlwarden-store"),
        ("audit", "--store", j / "st", "--db", "mysql://nowhere"),
        # output to an unwritable place, or under a file
        ("scan", g, "--format", "json", "--output", "/proc/mlwarden-report.json"),
        ("scan", g, "--format", "json", "--output", g / "sub" / "report.json"),
        ("lint", d, "--format", "sarif", "--output", "/proc/mlwarden-lint.sarif"),
        ("deps", d, "--offline", "--format", "json", "--output", "/proc/x.json"),
        ("memory", "check", d, "--no-home", "--output", "/proc/x.json"),
        ("demo", "--dir", "/proc/mlwarden-demo"),
    ]


def test_bad_input_is_one_line_and_exit_4(junk: Path) -> None:
    failures = []
    for args in cases(junk):
        r = mlw(*args, cwd=junk, home=junk)
        try:
            assert_clean_failure(r)
        except AssertionError as exc:
            failures.append(f"{args}: {exc}")
    assert not failures, "\n".join(failures)


def test_memory_key_and_seal_problems(tmp_path: Path) -> None:
    proj, home = tmp_path / "proj", tmp_path / "home"
    proj.mkdir()
    home.mkdir()
    (proj / "CLAUDE.md").write_text("# rules\n")
    assert_clean_failure(mlw("memory", "seal", proj, "--no-home", home=home))  # no key
    # A key inside the tree the agent can write is refused.
    assert_clean_failure(mlw("memory", "seal", proj, "--no-home", "--key", proj / "k.pem",
                             home=home))
    key = tmp_path / "keys" / "k.pem"
    assert_clean_failure(mlw("memory", "verify", proj, "--key", key, home=home))  # no key file
    assert mlw("memory", "seal", proj, "--no-home", "--key", key, home=home).code == 0
    # A seal replaced by garbage fails verification (status 1), without a traceback.
    (proj / ".mlwarden" / "memory.seal").write_bytes(GARBAGE)
    r = mlw("memory", "verify", proj, "--key", key, home=home)
    assert r.code == 1 and "Traceback" not in r.err
    # Garbage where an encrypted file is expected is rejected as not ours (status 1).
    (proj / "notes.md.mlwenc").write_bytes(GARBAGE)
    r = mlw("memory", "decrypt", proj / "notes.md.mlwenc", "--key", key, home=home)
    assert r.code == 1 and "Traceback" not in r.err and "invalid encrypted file" in r.err
    # Writing the plaintext or the public key somewhere impossible: one line, exit 4.
    assert mlw("memory", "encrypt", proj / "CLAUDE.md", "--key", key, home=home).code == 0
    assert_clean_failure(mlw("memory", "decrypt", proj / "CLAUDE.md.mlwenc", "--key", key,
                             "-o", "/proc/plain.md", home=home))
    assert_clean_failure(mlw("memory", "public-key", "--key", key, "-o", "/proc/k.pub",
                             home=home))


def test_corrupt_store_database(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    store = tmp_path / "store"
    r = mlw("import", model, "--repo", "org/m", "--store", store)
    assert r.code == 0, r.err
    db = store / "meta.db"
    assert db.is_file()
    db.write_bytes(GARBAGE * 4)
    for args in (("audit", "--store", store), ("token", "list", "--store", store),
                 ("approve", "org/m", "main", "--store", store),
                 ("import", model, "--repo", "org/m", "--store", store),
                 ("serve", "--store", store, "--port", "0")):
        assert_clean_failure(mlw(*args, timeout=30))


def test_serve_port_in_use(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    store = tmp_path / "store"
    assert mlw("import", model, "--repo", "org/m", "--store", store).code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = mlw("serve", "--store", store, "--port", port, timeout=30)
    assert_clean_failure(r)
    assert "in use" in r.err


def test_special_files_are_verdicts_not_crashes(tmp_path: Path) -> None:
    """FIFOs, device links and dangling links must neither hang nor crash a scan."""
    d = tmp_path / "tree"
    d.mkdir()
    os.mkfifo(d / "fifo")
    os.symlink("/dev/zero", d / "zero")
    os.symlink(tmp_path / "nowhere", d / "dangling")
    (d / "empty.txt").write_bytes(b"")
    (d / "garbage.bin").write_bytes(GARBAGE)
    r = mlw("scan", d, "--format", "json", timeout=30)
    assert r.code in (2, 3) and "Traceback" not in r.err
    doc = r.json()
    assert isinstance(doc, dict)
    verdicts = {Path(f["path"]).name: f["verdict"] for f in doc["files"]}
    assert verdicts["fifo"] == "unscannable"
    assert verdicts["empty.txt"] == "clean"
    lint = mlw("lint", d, timeout=30)
    assert "Traceback" not in lint.err and lint.code in (0, 1, 4)
