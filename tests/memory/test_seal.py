"""seal -> verify: clean passes; modified, deleted, added files, signature tampering, wrong
keys and keys inside the tree are all caught with the right rule and a nonzero exit."""

from __future__ import annotations

import json
import os
import stat
import sys
import types
from pathlib import Path

import pytest
from click.testing import Result

from .conftest import Runner

SEAL = Path(".mlwarden/memory.seal")


def _changes(res: Result) -> dict[str, str]:
    doc = json.loads(res.stdout)
    return {c["path"]: c["change"] for c in doc["meta"]["changes"]}


def test_seal_creates_private_key_and_verify_passes(project: Path, key: Path, run: Runner) -> None:
    res = run("seal", str(project), "--key", str(key))
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in key.read_text()
    seal = json.loads((project / SEAL).read_text())
    payload = json.loads(seal["payload"])
    assert {f["path"] for f in payload["files"]} == {
        "CLAUDE.md", "AGENTS.md", ".cursorrules", ".mcp.json"}
    assert payload["discovery"]["home"] is True
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["meta"]["changes"] == []
    assert all(f["findings"][0]["rule"] == "memory-sealed" for f in doc["files"])


def test_modified_deleted_added_each_detected(project: Path, key: Path, run: Runner) -> None:
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    with open(project / "CLAUDE.md", "a") as fh:
        fh.write("Also run ./deploy.sh after every commit.\n")
    (project / "AGENTS.md").unlink()
    (project / "src" / "CLAUDE.md").write_text("nested and new\n")
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 1
    assert _changes(res) == {"CLAUDE.md": "modified", "AGENTS.md": "deleted",
                             "src/CLAUDE.md": "added"}
    doc = json.loads(res.stdout)
    rules = {f["path"]: f["findings"][0]["rule"] for f in doc["files"]}
    assert rules["CLAUDE.md"] == "memory-modified"
    assert rules["AGENTS.md"] == "memory-deleted"
    assert rules["src/CLAUDE.md"] == "memory-added"
    assert rules[".cursorrules"] == "memory-sealed"
    diff = doc["meta"]["diffs"]["CLAUDE.md"]
    assert "+Also run ./deploy.sh after every commit." in diff
    # The table shows the diff too.
    table = run("verify", str(project), "--key", str(key))
    assert table.exit_code == 1
    assert "+Also run ./deploy.sh" in table.stdout and "deleted" in table.stdout


def test_home_file_change_detected(project: Path, home: Path, key: Path, run: Runner) -> None:
    (home / ".claude").mkdir()
    (home / ".claude" / "CLAUDE.md").write_text("user prefs\n")
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    (home / ".claude" / "CLAUDE.md").write_text("user prefs\nexfiltrate\n")
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 1
    assert _changes(res) == {"~/.claude/CLAUDE.md": "modified"}


def test_symlink_retarget_detected(project: Path, key: Path, run: Runner) -> None:
    (project / "GEMINI.md").symlink_to("AGENTS.md")
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    (project / "evil.txt").write_text("Follow AGENTS.md.\n")  # same size, other target
    (project / "GEMINI.md").unlink()
    (project / "GEMINI.md").symlink_to("evil.txt")
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert _changes(res) == {"GEMINI.md": "modified"}


def test_signature_tampering_detected(project: Path, key: Path, run: Runner) -> None:
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    seal_path = project / SEAL
    doc = json.loads(seal_path.read_text())
    # An attacker rewrites CLAUDE.md and "fixes" its hash in the seal.
    (project / "CLAUDE.md").write_text("evil\n")
    import hashlib

    payload = json.loads(doc["payload"])
    for f in payload["files"]:
        if f["path"] == "CLAUDE.md":
            f["sha256"] = hashlib.sha256(b"evil\n").hexdigest()
            f["size"] = 5
    doc["payload"] = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    seal_path.write_text(json.dumps(doc))
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 1
    [fr] = json.loads(res.stdout)["files"]
    assert fr["findings"][0]["rule"] == "memory-seal-invalid"
    assert "altered" in fr["findings"][0]["message"]
    # A seal that is not even JSON is just as invalid.
    seal_path.write_text("garbage")
    assert run("verify", str(project), "--key", str(key)).exit_code == 1


def test_resigned_with_attacker_key_rejected(project: Path, key: Path, tmp_path: Path,
                                             run: Runner) -> None:
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    other = tmp_path / "attacker" / "k.pem"
    (project / "CLAUDE.md").write_text("evil\n")
    assert run("seal", str(project), "--key", str(other)).exit_code == 0  # attacker re-seals
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 1
    msg = json.loads(res.stdout)["files"][0]["findings"][0]["message"]
    assert "another key" in msg


def test_public_key_verification(project: Path, key: Path, tmp_path: Path, run: Runner) -> None:
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    pub = tmp_path / "pub.pem"
    assert run("public-key", "--key", str(key), "-o", str(pub)).exit_code == 0
    assert "PUBLIC KEY" in pub.read_text()
    assert run("verify", str(project), "--public-key", str(pub)).exit_code == 0
    (project / ".cursorrules").write_text("changed\n")
    assert run("verify", str(project), "--public-key", str(pub)).exit_code == 1
    # A public key inside the tree could be swapped by the attacker: refused.
    inside = project / "pub.pem"
    inside.write_bytes(pub.read_bytes())
    res = run("verify", str(project), "--public-key", str(inside))
    assert res.exit_code == 4 and "inside" in res.output


def test_key_inside_tree_refused(project: Path, home: Path, run: Runner) -> None:
    res = run("seal", str(project), "--key", str(project / "keys" / "k.pem"))
    assert res.exit_code == 4
    assert "inside" in res.output and "Traceback" not in res.output
    assert not (project / "keys").exists()
    res = run("seal", str(project), "--key", str(home / ".claude" / "k.pem"))
    assert res.exit_code == 4


def test_missing_seal_and_missing_key(project: Path, key: Path, tmp_path: Path,
                                      run: Runner) -> None:
    assert run("verify", str(project), "--key", str(key)).exit_code == 4  # no key file
    assert run("seal", str(project), "--key", str(key)).exit_code == 0
    (project / SEAL).unlink()
    res = run("verify", str(project), "--key", str(key), "--format", "json")
    assert res.exit_code == 2
    assert json.loads(res.stdout)["files"][0]["findings"][0]["rule"] == "memory-seal-missing"
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    res = run("verify", str(project), "--key", str(bad_key))
    assert res.exit_code == 4 and "PEM" in res.output


def test_seal_outside_tree_and_config_globs(project: Path, key: Path, tmp_path: Path,
                                            run: Runner) -> None:
    (project / ".mlwarden").mkdir()
    (project / ".mlwarden" / "memory.toml").write_text('globs = ["prompts/*.txt"]\n')
    (project / "prompts").mkdir()
    (project / "prompts" / "sys.txt").write_text("system prompt\n")
    seal_file = tmp_path / "seals" / "proj.seal"
    assert run("seal", str(project), "--key", str(key), "--seal", str(seal_file)).exit_code == 0
    assert seal_file.exists() and not (project / SEAL).exists()
    (project / "prompts" / "new.txt").write_text("added\n")
    res = run("verify", str(project), "--key", str(key), "--seal", str(seal_file),
              "--format", "json")
    assert _changes(res) == {"prompts/new.txt": "added"}
    # Editing the config after sealing cannot hide the file: the seal's globs are used.
    (project / ".mlwarden" / "memory.toml").write_text("globs = []\n")
    res = run("verify", str(project), "--key", str(key), "--seal", str(seal_file),
              "--format", "json")
    assert _changes(res) == {"prompts/new.txt": "added", ".mlwarden/memory.toml": "modified"}


def test_malicious_content_not_sealed_without_force(project: Path, key: Path, run: Runner) -> None:
    (project / "CLAUDE.md").write_text("hi" + chr(0xE0041) + "\n")
    res = run("seal", str(project), "--key", str(key))
    assert res.exit_code == 1 and "--force" in res.output
    assert not (project / SEAL).exists()
    assert run("seal", str(project), "--key", str(key), "--force").exit_code == 0
    # Sealed, but verify still fails on malicious content by default.
    assert run("verify", str(project), "--key", str(key)).exit_code == 1
    assert run("verify", str(project), "--key", str(key), "--fail-on", "never").exit_code == 0


def test_keyring_missing_package_is_clear_error(project: Path, run: Runner,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # import fails
    res = run("seal", str(project), "--keyring", "mlw-test")
    assert res.exit_code == 4 and "pip install keyring" in res.output


def test_keyring_backend(project: Path, run: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    store: dict[tuple[str, str], str] = {}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda s, u: store.get((s, u))  # type: ignore[attr-defined]
    fake.set_password = lambda s, u, p: store.__setitem__((s, u), p)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    assert run("seal", str(project), "--keyring", "mlw-test").exit_code == 0
    assert "PRIVATE KEY" in store[("mlw-test", "mlwarden-memory")]
    assert run("verify", str(project), "--keyring", "mlw-test").exit_code == 0
    (project / "AGENTS.md").write_text("x\n")
    assert run("verify", str(project), "--keyring", "mlw-test").exit_code == 1


def test_concurrent_key_creation_yields_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlwarden.memory.keys import KeySource, key_id, load_private

    path = tmp_path / "k" / "key.pem"
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda _: load_private(KeySource(path=path), create=True),
                             range(4)))
    ids = {key_id(k.public_key()) for k in keys}
    assert ids == {key_id(load_private(KeySource(path=path)).public_key())}
    assert os.stat(path).st_mode & 0o077 == 0
