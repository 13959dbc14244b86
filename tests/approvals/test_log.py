"""The approval log detects any edit, deletion, insertion, reordering or truncation; exports
valid in-toto statements; mirrors and cross-checks the store's approval events."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlwarden.approvals import ApprovalLogError, append, read_log, verify_log
from mlwarden.approvals.log import HEAD_NAME, LOG_NAME, PUB_NAME
from mlwarden.cli.main import cli

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    keydir = tmp_path / "secrets"
    monkeypatch.setenv("MLWARDEN_LOG_KEY", str(keydir / "log.pem"))
    monkeypatch.delenv("MLWARDEN_LOG_CHECKPOINT", raising=False)
    store = tmp_path / "store"
    store.mkdir()
    return {"store": store, "key": keydir / "log.pem", "keydir": keydir}


def _fill(store: Path, n: int = 4) -> None:
    append(store, "promotion", f"acme/tiny@{COMMIT}",
           {"repo": "acme/tiny", "commit": COMMIT, "revision": "main",
            "endpoint": "https://huggingface.co", "files": {"model.safetensors": "a" * 64,
                                                            "config.json": "b" * 64},
            "scanner_version": "0.1.0", "policy_version": "1", "verdict": "clean"},
           actor="airlock")
    append(store, "approval", f"acme/tiny@{COMMIT}", {"note": "reviewed"}, actor="alice")
    append(store, "tag-move", "acme/tiny:v1", {"from": None, "to": COMMIT}, actor="alice")
    for i in range(n - 3):
        append(store, "exception", "c" * 64, {"sha256": "c" * 64, "justification": f"#{i}",
                                              "expires": "2030-01-01"}, actor="bob")


def _lines(store: Path) -> list[str]:
    return (store / LOG_NAME).read_text().splitlines()


def _write(store: Path, lines: list[str]) -> None:
    (store / LOG_NAME).write_text("".join(line + "\n" for line in lines))


def test_append_and_verify(env: dict[str, Path]) -> None:
    _fill(env["store"])
    res = verify_log(env["store"], [env["store"] / PUB_NAME])
    assert res.ok and res.entries == 4, res.problems
    assert stat.S_IMODE(os.stat(env["key"]).st_mode) == 0o600
    entries = read_log(env["store"])
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[1].prev_hash == entries[0].hash and entries[0].prev_hash == "0" * 64


def _edit(lines: list[str]) -> list[str]:
    d = json.loads(lines[1])
    d["actor"] = "mallory"
    return [lines[0], json.dumps(d), *lines[2:]]


def _edit_and_rehash(lines: list[str]) -> list[str]:
    """Recomputing the hash does not help without the key."""
    from mlwarden.approvals.log import entry_hash

    d = json.loads(lines[1])
    d["details"]["note"] = "rubber-stamped"
    d["hash"] = entry_hash({k: v for k, v in d.items() if k not in ("hash", "signature")})
    return [lines[0], json.dumps(d), *lines[2:]]


TAMPERS = {
    "edit": _edit,
    "edit-rehash": _edit_and_rehash,
    "delete": lambda ls: [ls[0], *ls[2:]],
    "reorder": lambda ls: [ls[0], ls[2], ls[1], *ls[3:]],
    "insert": lambda ls: [ls[0], ls[1], ls[1], *ls[2:]],
    "truncate": lambda ls: ls[:-1],
    "delete-all": lambda ls: [],
    "garbage": lambda ls: [*ls[:2], "{not json", *ls[2:]],
}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_tampering_is_detected(env: dict[str, Path], name: str) -> None:
    _fill(env["store"])
    _write(env["store"], TAMPERS[name](_lines(env["store"])))
    res = verify_log(env["store"], [env["store"] / PUB_NAME])
    assert not res.ok, name
    r = CliRunner().invoke(cli, ["log", "verify", "--store", str(env["store"])])
    assert r.exit_code == 1 and "TAMPERED" in r.output, r.output


def test_truncation_with_head_file_rewritten_is_caught_by_checkpoint(
        env: dict[str, Path]) -> None:
    """An attacker who truncates the log and restores an older signed head file is still
    caught by the checkpoint kept beside the key, outside the store."""
    store = env["store"]
    append(store, "approval", "acme/a@1", {})
    old_head = (store / HEAD_NAME).read_text()
    old_log = _lines(store)
    append(store, "approval", "acme/b@2", {})
    _write(store, old_log)
    (store / HEAD_NAME).write_text(old_head)
    res = verify_log(store, [store / PUB_NAME])
    assert not res.ok and any("truncated" in p for p in res.problems)


def test_forged_log_with_another_key_fails_against_pinned_key(env: dict[str, Path],
                                                              tmp_path: Path) -> None:
    store = env["store"]
    _fill(store)
    pinned = tmp_path / "pinned.pub.pem"
    pinned.write_bytes((store / PUB_NAME).read_bytes())
    # Whoever can write the store rebuilds the whole log with their own key.
    for name in (LOG_NAME, HEAD_NAME, PUB_NAME):
        (store / name).unlink()
    append(store, "approval", "acme/evil@1", {}, key=tmp_path / "attacker.pem",
           checkpoint=tmp_path / "attacker-cp.json")
    assert verify_log(store, checkpoint=tmp_path / "attacker-cp.json").ok  # self-consistent
    res = verify_log(store, [pinned])
    assert not res.ok and any("unknown key" in p for p in res.problems)


def test_key_outside_store_and_bad_input(env: dict[str, Path]) -> None:
    store = env["store"]
    with pytest.raises(ApprovalLogError):
        append(store, "approval", "x", {}, key=store / "key.pem")
    with pytest.raises(ApprovalLogError):
        append(store, "bogus", "x", {})
    with pytest.raises(ApprovalLogError):
        append(store, "approval", "x", {"bad": object()})
    for args in (["log", "verify", "--store", str(store / "missing")],
                 ["log", "append", "--store", str(store), "--kind", "approval", "--subject",
                  "x", "--details", "[1]"],
                 ["log", "verify", "--store", str(store), "--public-key",
                  str(store / "none.pem")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 4 and "Traceback" not in r.output, (args, r.output)


def test_in_toto_export(env: dict[str, Path]) -> None:
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    _fill(env["store"])
    r = CliRunner().invoke(cli, ["log", "export", "--store", str(env["store"]),
                                 "--format", "in-toto"])
    assert r.exit_code == 0, r.output
    stmts = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(stmts) == 4
    for s in stmts:
        Statement.copy_from_pb(json_format.ParseDict(s, statement_pb2.Statement())).validate()
    prov = stmts[0]
    assert prov["_type"] == "https://in-toto.io/Statement/v1"
    assert prov["predicateType"] == "https://slsa.dev/provenance/v1"
    assert {s["name"]: s["digest"]["sha256"] for s in prov["subject"]} == \
        {"model.safetensors": "a" * 64, "config.json": "b" * 64}
    bd = prov["predicate"]["buildDefinition"]
    assert bd["externalParameters"] == {"endpoint": "https://huggingface.co",
                                        "repo": "acme/tiny", "revision": "main"}
    assert bd["resolvedDependencies"][0]["digest"] == {"gitCommit": COMMIT}
    assert prov["predicate"]["runDetails"]["builder"]["version"] == \
        {"scanner_version": "0.1.0", "policy_version": "1"}
    assert stmts[1]["subject"][0]["digest"] == {"gitCommit": COMMIT}
    assert stmts[3]["subject"][0]["digest"] == {"sha256": "c" * 64}
    r = CliRunner().invoke(cli, ["log", "show", "--store", str(env["store"]), "--format",
                                 "json", "--kind", "exception"])
    assert [json.loads(x)["kind"] for x in r.stdout.splitlines()] == ["exception"]


def test_store_approvals_are_logged_as_they_happen(env: dict[str, Path],
                                                   tmp_path: Path) -> None:
    store_mod = pytest.importorskip("mlwarden.store")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    store = store_mod.Store.open(env["store"])
    c = store.commit_directory(model, "acme/tiny", tags=["v1"], author="alice")
    store.approve("acme/tiny", c.id, actor="alice", note="ok")
    kinds = [e.kind for e in read_log(env["store"])]
    assert kinds.count("tag-move") == 2 and "approval" in kinds
    store.revoke("acme/tiny", c.id, actor="bob")
    assert [e.kind for e in read_log(env["store"])][-1] == "revocation"
    store.close()
    r = CliRunner().invoke(cli, ["log", "verify", "--store", str(env["store"])])
    assert r.exit_code == 0, r.output


def test_store_events_are_mirrored_and_cross_checked(env: dict[str, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store_mod = pytest.importorskip("mlwarden.store")
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    store = store_mod.Store.open(env["store"])
    c = store.commit_directory(model, "acme/tiny", tags=["v1"], author="alice")
    # As if appending to the log had failed: the database alone has the events.
    monkeypatch.setenv("MLWARDEN_APPROVAL_LOG", "0")
    store.approve("acme/tiny", c.id, actor="alice", note="ok")
    monkeypatch.delenv("MLWARDEN_APPROVAL_LOG")
    store.close()
    sroot = str(env["store"])
    r = CliRunner().invoke(cli, ["log", "sync", "--store", sroot])
    assert r.exit_code == 0 and "mirrored 3" in r.output, r.output  # approve, branch, tag
    r = CliRunner().invoke(cli, ["log", "sync", "--store", sroot])
    assert "mirrored 0" in r.output
    kinds = [e.kind for e in read_log(env["store"])]
    assert kinds.count("tag-move") == 2 and "approval" in kinds
    r = CliRunner().invoke(cli, ["log", "verify", "--store", sroot])
    assert r.exit_code == 0, r.output
    # Someone edits the database behind the log's back.
    import sqlite3

    db = sqlite3.connect(env["store"] / "meta.db")
    db.execute("UPDATE approvals SET actor = 'mallory' WHERE action = 'approve'")
    db.commit()
    db.close()
    r = CliRunner().invoke(cli, ["log", "verify", "--store", sroot])
    assert r.exit_code == 1 and "differs from the log" in r.output, r.output
