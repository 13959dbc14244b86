"""`pull` appends its provenance to the store's signed approval log: a `promotion` entry
(upstream, requested revision and resolved commit, file digests, scanner and policy versions,
actor) and an `exception` entry per applied policy exception, written ahead of the manifest.
`log verify` passes afterwards, `log export --format in-toto` yields SLSA provenance whose
subjects are the pulled files, and a log that cannot be appended stops the pull cleanly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from airlock.conftest import REPO, Paths, Upstream
from airlock.support import isolated_env, run_cli, store_state
from mlwarden.airlock.hooks import CRASH_EXIT
from mlwarden.approvals import read_log
from mlwarden.approvals.keys import load_or_create_key
from mlwarden.cli.main import cli
from mlwarden.manifest import load
from mlwarden.policy import Policy


@pytest.fixture
def log_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A key of this test only, and its public half to pin `log verify` to."""
    key = tmp_path / "log-key" / "k.pem"
    monkeypatch.setenv("MLWARDEN_LOG_KEY", str(key))
    monkeypatch.delenv("MLWARDEN_LOG_CHECKPOINT", raising=False)
    monkeypatch.delenv("MLWARDEN_APPROVAL_LOG", raising=False)
    pub = tmp_path / "log-key" / "pub.pem"
    pub.write_bytes(load_or_create_key(key).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pub


def _cli(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def _pull(paths: Paths, url: str, *extra: str) -> tuple[int, str, str]:
    return _cli("pull", REPO, "--endpoint", url, "--store", str(paths.store), "--manifest",
                str(paths.manifest), "--scan-cache", str(paths.cache), *extra)


def _export(paths: Paths, kind: str) -> list[dict[str, object]]:
    code, out, err = _cli("log", "export", "--store", str(paths.store), "--format", "in-toto",
                          "--kind", kind)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pull_logs_provenance_and_exports_slsa(upstream: Upstream, paths: Paths,
                                               log_key: Path) -> None:
    code, _, err = _pull(paths, upstream.url)
    assert code == 0, err
    code, out, err = _cli("log", "verify", "--store", str(paths.store), "--public-key",
                          str(log_key))
    assert code == 0, out + err

    entries = read_log(paths.store)
    kinds = [e.kind for e in entries]
    assert kinds.count("promotion") == 1
    # Written ahead: the promotion precedes the store's own approval of the commit.
    assert kinds.index("promotion") < kinds.index("approval")
    promo = entries[kinds.index("promotion")]
    assert promo.subject == f"{REPO}@{upstream.commit}"
    manifest = load(paths.manifest).models[REPO]
    d = promo.details
    assert d["files"] == {p: f.sha256 for p, f in manifest.files.items()}
    assert (d["revision"], d["ref"], d["ref_kind"], d["commit"]) == \
        ("main", "main", "branch", upstream.commit)
    assert d["endpoint"] == upstream.url and d["verdict"] == "clean"
    assert d["policy"] == "built-in defaults"
    assert d["policy_version"] == Policy().fingerprint()
    assert d["actor"] == promo.actor and d["exceptions"] == []

    [stmt] = _export(paths, "promotion")
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v1"
    local = {p.name: _sha(p) for p in upstream.model_dir.iterdir() if p.is_file()}
    assert stmt["subject"] == [{"name": n, "digest": {"sha256": s}}
                               for n, s in sorted(local.items())]
    pred = stmt["predicate"]
    assert isinstance(pred, dict)
    build = pred["buildDefinition"]
    assert build["externalParameters"] == {"endpoint": upstream.url, "repo": REPO,
                                           "revision": "main"}
    assert build["resolvedDependencies"] == [{"uri": f"pkg:huggingface/{REPO}@{upstream.commit}",
                                              "digest": {"gitCommit": upstream.commit}}]
    assert build["internalParameters"]["policy_version"] == Policy().fingerprint()
    version = pred["runDetails"]["builder"]["version"]
    import mlwarden
    from mlwarden.scancache import rules_version

    assert version["mlwarden_version"] == mlwarden.__version__
    assert version["scanner_version"] == f"{mlwarden.__version__}+rules.{rules_version()}"
    assert version["policy_version"] == Policy().fingerprint()


def test_applied_exception_is_logged(upstream: Upstream, paths: Paths, log_key: Path,
                                     tmp_path: Path) -> None:
    weights = _sha(upstream.model_dir / "model.safetensors")
    policy = tmp_path / "mlwarden.toml"
    policy.write_text(f"""[policy]
max-file-size = "20KB"
[[policy.exceptions]]
rule = "policy-size-limit"
sha256 = "{weights}"
justification = "tiny test model; reviewed"
approver = "alice"
expires = 2099-12-31
""")
    code, _, err = _pull(paths, upstream.url, "--policy", str(policy))
    assert code == 0, err
    code, out, err = _cli("log", "verify", "--store", str(paths.store), "--public-key",
                          str(log_key))
    assert code == 0, out + err
    entries = read_log(paths.store)
    [exc] = [e for e in entries if e.kind == "exception"]
    [promo] = [e for e in entries if e.kind == "promotion"]
    assert exc.seq < promo.seq  # the waiver is on record before what it made possible
    assert exc.subject == weights
    assert {k: exc.details[k] for k in ("rule", "sha256", "justification", "approver",
                                        "expires", "repo", "commit", "paths")} == {
        "rule": "policy-size-limit", "sha256": weights,
        "justification": "tiny test model; reviewed", "approver": "alice",
        "expires": "2099-12-31", "repo": REPO, "commit": upstream.commit,
        "paths": ["model.safetensors"]}
    assert [x["sha256"] for x in promo.details["exceptions"]] == [weights]
    assert promo.details["policy"] == str(policy)
    [stmt] = _export(paths, "exception")
    assert stmt["subject"] == [{"name": weights, "digest": {"sha256": weights}}]
    assert stmt["predicateType"] == "https://mlwarden.dev/approval-log/v1"


def test_log_failure_stops_pull_cleanly(upstream: Upstream, paths: Paths, log_key: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A signing key inside the store is refused by the log: the append fails.
    monkeypatch.setenv("MLWARDEN_LOG_KEY", str(paths.store / "keys" / "k.pem"))
    code, _, err = _pull(paths, upstream.url)
    assert code == 4, err
    assert "approval log" in err and "nothing was promoted" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not paths.manifest.exists()
    assert all(not s["approved"] and not s["refs"] for s in store_state(paths.store).values())
    assert not list((paths.store / "tmp").glob("quarantine-*"))
    assert not any(e.kind == "promotion" for e in read_log(paths.store))
    # Fixed: the next pull completes the same commit and logs it.
    monkeypatch.undo()
    monkeypatch.setenv("MLWARDEN_LOG_KEY", str(log_key.parent / "k.pem"))
    code, _, err = _pull(paths, upstream.url)
    assert code == 0, err
    assert store_state(paths.store)[REPO]["approved"] == [upstream.commit]
    assert [e.kind for e in read_log(paths.store)].count("promotion") == 1
    code, out, err = _cli("log", "verify", "--store", str(paths.store), "--public-key",
                          str(log_key))
    assert code == 0, out + err


def test_killed_after_logging(upstream: Upstream, paths: Paths, log_key: Path,
                              tmp_path: Path) -> None:
    """Killed between the log append and the manifest: nothing visible changed; the next
    pull completes and logs its own promotion; the log stays intact."""
    env = isolated_env(tmp_path, MLWARDEN_LOG_KEY=str(log_key.parent / "k.pem"))
    args = ["pull", REPO, "--endpoint", upstream.url, "--store", str(paths.store),
            "--manifest", str(paths.manifest)]
    proc = run_cli(args, {**env, "MLWARDEN_TEST_CRASH_AT": "log"})
    assert proc.returncode == CRASH_EXIT, proc.stderr
    assert not paths.manifest.exists()
    assert all(not s["approved"] for s in store_state(paths.store).values())
    assert [e.kind for e in read_log(paths.store)] == ["promotion"]
    proc = run_cli(args, env)
    assert proc.returncode == 0, proc.stderr
    assert load(paths.manifest).models[REPO].commit == upstream.commit
    assert [e.kind for e in read_log(paths.store)].count("promotion") == 2
    proc = run_cli(["log", "verify", "--store", str(paths.store), "--public-key",
                    str(log_key)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
