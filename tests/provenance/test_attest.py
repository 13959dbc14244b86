"""`mlwarden attest`: what the record of a real (tiny) Trainer run contains, and the failure
paths: a failed command, an unusable key, no Sigstore token, a dirty tree."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from corpus.pki import Pki
from mlwarden.provenance.record import dependencies_of, kind_of, schema_errors, subjects_of
from mlwarden.signing.statement import Trust, unverified_statement, verify_statement
from provenance.support import (
    BASE_COMMIT,
    BASE_REPO,
    BUILDER,
    Trained,
    git,
    github_env,
    mlwarden,
    run_env,
)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def statement(record: Path) -> dict:
    return unverified_statement(record.read_bytes())


def deps_of(stmt: dict, kind: str) -> list[dict]:
    return [d for d in dependencies_of(stmt) if kind_of(d) == kind]


def test_record_of_a_trainer_run(trained: Trained, keys: Pki) -> None:
    data = trained.record.read_bytes()
    verified = verify_statement(data, Trust(public_keys=(keys.pub,)))
    assert verified.ok and verified.method == "key"
    stmt = verified.statement
    assert stmt is not None and schema_errors(stmt) == []

    # What it wrote: the weights and config, with their sha256; never the record itself.
    subjects = subjects_of(stmt)
    for name in ("model.safetensors", "config.json"):
        assert subjects[f"out/model/{name}"] == sha(trained.model / name)
    assert "out/model/provenance.json" not in subjects

    # The training code: commit, ref, clean tree.
    (src,) = deps_of(stmt, "source")
    assert src["uri"] == "git+https://github.com/acme/train@refs/heads/main"
    assert src["digest"] == {"gitCommit": trained.commit}
    assert src["annotations"]["dirty"] is False

    # What it read: the dataset and the configuration, hashed after the run.
    (ds,) = deps_of(stmt, "dataset")
    assert ds["name"] == "data/train.jsonl"
    assert ds["digest"]["sha256"] == sha(trained.workspace / "data" / "train.jsonl")
    (cfg,) = deps_of(stmt, "config")
    assert cfg["name"] == "config/train.yaml"
    assert stmt["predicate"]["buildDefinition"]["externalParameters"]["configFiles"] == \
        ["config/train.yaml"]

    # The base model with its Hub commit, and every file of that snapshot.
    (base,) = deps_of(stmt, "base-model")
    assert base["uri"] == f"pkg:huggingface/{BASE_REPO}@{BASE_COMMIT}"
    assert base["digest"]["gitCommit"] == BASE_COMMIT
    snap = trained.hf_home / "hub" / "models--acme--tiny-base" / "snapshots" / BASE_COMMIT
    assert base["annotations"]["files"]["model.safetensors"] == sha(snap / "model.safetensors")
    assert "model.safetensors" in base["annotations"]["read"]  # opened natively (safetensors)

    # The environment: installed distributions, the ones the run imported marked used.
    dists = {d["name"]: d for d in deps_of(stmt, "distribution")}
    assert dists["torch"]["uri"].startswith("pkg:pypi/torch@")
    assert dists["torch"]["annotations"]["used"] is True
    assert dists["transformers"]["annotations"]["used"] is True
    assert any(d["annotations"]["used"] is False for d in dists.values())
    assert deps_of(stmt, "interpreter")[0]["uri"].startswith("pkg:generic/python@")

    # The builder, from GitHub Actions' variables.
    run = stmt["predicate"]["runDetails"]
    assert run["builder"]["id"] == BUILDER
    assert run["metadata"]["invocationId"] == \
        "https://github.com/acme/train/actions/runs/4242/attempts/1"
    internal = stmt["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["hostedBuilder"] is True and internal["builderPlatform"] == "github-actions"
    assert internal["capture"]["complete"] is True

    # The SLSA level, with why: a key the job holds is L1, keyless would be L2, never L3.
    (level,) = run["byproducts"]
    assert level["annotations"]["level"] == 1
    unmet = " ".join(level["annotations"]["unmet"])
    assert "keyless" in unmet and "L3" in unmet


def test_the_json_summary_states_the_level(trained: Trained, keys: Pki, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    (ws / "gen.py").write_text("open('model.bin', 'wb').write(b'w' * 64)\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "x")
    res = mlwarden(["attest", "-o", "prov.json", "--key", str(keys.key), "--format", "json",
                    "--", sys.executable, "gen.py"], run_env(tmp_path / "hf"), cwd=ws)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["slsa_level"]["level"] == 1
    assert any("hosted build platform" in r for r in doc["slsa_level"]["unmet"])
    assert doc["subjects"][0]["name"] == "model.bin"
    assert doc["builder"].startswith("local://")


def test_a_failed_command_gets_no_record(tmp_path: Path, keys: Pki) -> None:
    res = mlwarden(["attest", "-o", "prov.json", "--key", str(keys.key), "--",
                    sys.executable, "-c", "open('half.bin','w').write('x'); raise SystemExit(3)"],
                   run_env(tmp_path / "hf"), cwd=tmp_path)
    assert res.returncode == 3
    assert not (tmp_path / "prov.json").exists()
    assert "no provenance is written for a failed run" in res.stderr


def test_an_unusable_key_stops_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    res = mlwarden(["attest", "-o", "prov.json", "--key", "key.pem", "--", sys.executable, "-c",
                    "open('ran', 'w').close()"], run_env(tmp_path / "hf"), cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    assert "not a PEM private key" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "ran").exists()


def test_a_wrong_key_password_stops_the_command_at_its_start(tmp_path: Path) -> None:
    """The key is parsed while the command starts (not before: the crypto stack takes longer
    to import than a Python interpreter takes to start); a failure stops the command."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right")))
    env = run_env(tmp_path / "hf")
    env["KEYPASS"] = "wrong"
    t0 = time.monotonic()
    res = mlwarden(["attest", "-o", "prov.json", "--key", "key.pem", "--password-env",
                    "KEYPASS", "--", sys.executable, "-c",
                    "import time; time.sleep(20); open('ran', 'w').close()"], env,
                   cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    assert "wrong password" in res.stderr and "the command was stopped" in res.stderr
    assert "Traceback" not in res.stderr
    assert time.monotonic() - t0 < 15
    assert not (tmp_path / "ran").exists() and not (tmp_path / "prov.json").exists()


def test_keyless_without_a_token_stops_before_the_run(tmp_path: Path) -> None:
    res = mlwarden(["attest", "-o", "prov.json", "--sigstore", "--", sys.executable, "-c",
                    "open('ran', 'w').close()"], run_env(tmp_path / "hf"), cwd=tmp_path)
    assert res.returncode == 4
    assert "OIDC identity token" in res.stderr
    assert not (tmp_path / "ran").exists()


def test_keyless_offline_fails_cleanly_after_the_run(tmp_path: Path) -> None:
    """With a token but no network, signing fails with one line; nothing half-written."""
    res = mlwarden(["attest", "-o", "prov.json", "--sigstore", "--identity-token",
                    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "--", sys.executable, "-c",
                    "open('out.bin', 'w').write('x')"], run_env(tmp_path / "hf"), cwd=tmp_path,
                   timeout=180)
    assert res.returncode == 4, res.stderr
    assert "signing failed" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "prov.json").exists()


def test_dirty_tree_untracked_code_and_declared_inputs(tmp_path: Path, keys: Pki) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    (ws / "lib.py").write_text("X = 1\n")
    (ws / "data.bin").write_bytes(b"\x00\x01" * 100)
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "x")
    (ws / "lib.py").write_text("X = 2\n")  # a tracked file modified
    (ws / "gen.py").write_text(  # untracked code
        "import lib\nd = open('data.bin', 'rb').read()\n"
        "import os\nos.makedirs('out', exist_ok=True)\n"
        "open('out/w.bin', 'wb').write(d[::-1])\n")
    extra = tmp_path / "declared.csv"
    extra.write_text("a,b\n")
    res = mlwarden(["attest", "-o", "prov.json", "--unsigned", "--outputs", "out",
                    "--dataset", str(extra), "--image-digest",
                    "registry.example.com/train/cuda:12@sha256:" + "c" * 64, "--",
                    sys.executable, "gen.py"], run_env(tmp_path / "hf"), cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "dirty" in res.stderr
    stmt = json.loads((ws / "prov.json").read_text())
    (src,) = deps_of(stmt, "source")
    assert src["annotations"]["dirty"] is True
    assert src["annotations"]["modified"] == ["lib.py"]
    assert sorted(src["annotations"]["codeOutsideCommit"]) == ["gen.py", "lib.py"]
    code = {d["name"]: d for d in deps_of(stmt, "code")}
    assert code["gen.py"]["annotations"]["tracked"] is False
    assert code["lib.py"]["digest"]["sha256"] == sha(ws / "lib.py")
    datasets = {d["name"]: d["digest"]["sha256"] for d in deps_of(stmt, "dataset")}
    assert datasets["data.bin"] == sha(ws / "data.bin")
    assert datasets[str(extra)] == sha(extra)  # declared, outside the workspace
    (img,) = deps_of(stmt, "container-image")
    assert img["digest"] == {"sha256": "c" * 64}
    assert img["uri"].startswith("pkg:oci/cuda@sha256%3A")
    assert list(subjects_of(stmt)) == ["out/w.bin"]  # only under --outputs
    assert "prov.json" not in subjects_of(stmt)


def test_gitlab_builder_and_native_reads(tmp_path: Path, keys: Pki) -> None:
    """GitLab CI names the builder; files opened in native code (safetensors' Rust, a
    memory map) are captured too."""
    import numpy as np
    from safetensors.numpy import save_file

    ws = tmp_path / "ws"
    ws.mkdir()
    save_file({"w": np.ones((4, 4), dtype=np.float32)}, str(ws / "weights.safetensors"))
    np.arange(100, dtype=np.int64).tofile(ws / "tokens.bin")
    (ws / "gen.py").write_text(
        "import mmap, numpy\nfrom safetensors import safe_open\n"
        "with safe_open('weights.safetensors', framework='np') as f:\n"
        "    w = f.get_tensor('w')\n"
        "m = numpy.memmap('tokens.bin', dtype='int64', mode='r')\n"
        "numpy.save('out.npy', w * m[:16].reshape(4, 4))\n")
    env = run_env(tmp_path / "hf", GITLAB_CI="true", CI_SERVER_URL="https://gitlab.com",
                  CI_PROJECT_PATH="acme/train", CI_RUNNER_ID="77",
                  CI_RUNNER_DESCRIPTION="2-blue.saas-linux-small-amd64.runners-manager.gitlab.com",
                  CI_JOB_URL="https://gitlab.com/acme/train/-/jobs/9",
                  CI_PROJECT_URL="https://gitlab.com/acme/train", CI_COMMIT_SHA="d" * 40,
                  CI_COMMIT_REF_NAME="main")
    res = mlwarden(["attest", "-o", "prov.json", "--key", str(keys.key), "--", sys.executable,
                    "gen.py"], env, cwd=ws)
    assert res.returncode == 0, res.stderr
    stmt = statement(ws / "prov.json")
    run = stmt["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://gitlab.com/acme/train/-/runners/77"
    assert run["metadata"]["invocationId"] == "https://gitlab.com/acme/train/-/jobs/9"
    (src,) = deps_of(stmt, "source")  # no git checkout: the CI's own statement of it
    assert src["uri"] == "git+https://gitlab.com/acme/train@refs/heads/main"
    assert src["digest"] == {"gitCommit": "d" * 40}
    read = {d.get("name") for d in dependencies_of(stmt)}
    assert "weights.safetensors" in read and "tokens.bin" in read
    assert "out.npy" in subjects_of(stmt)


def test_python_api_and_callback_make_the_same_record(trained: Trained, keys: Pki,
                                                       tmp_path: Path) -> None:
    """The same training, recorded from inside by the transformers callback: the same
    subjects, data, configuration, base model and source as under `mlwarden attest`."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(trained.workspace, ws, ignore=shutil.ignore_patterns("out"))
    script = (ws / "train.py").read_text()
    script = script.replace(
        "from transformers import AutoModelForMaskedLM, Trainer, TrainingArguments",
        "from transformers import AutoModelForMaskedLM, Trainer, TrainingArguments\n"
        "from mlwarden.provenance.hf import ProvenanceCallback\n"
        f"cb = ProvenanceCallback('out/model/provenance.json', key={str(keys.key)!r}, "
        "outputs=['out'])\ncb.start()")
    script = script.replace("train_dataset=Rows())", "train_dataset=Rows(), callbacks=[cb])")
    script += "cb.finalize()\n"
    (ws / "train.py").write_text(script)
    git(ws, "commit", "-q", "-am", "record from inside")
    commit = git(ws, "rev-parse", "HEAD").strip()
    env = run_env(trained.hf_home, **github_env(commit))
    import subprocess

    done = subprocess.run([sys.executable, "train.py", "out"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    inside = statement(ws / "out" / "model" / "provenance.json")
    outside = statement(trained.record)
    assert set(subjects_of(inside)) >= {"out/model/model.safetensors", "out/model/config.json"}
    for kind in ("dataset", "config", "base-model"):
        assert [(d.get("name"), d.get("uri"), d["digest"]) for d in deps_of(inside, kind)] == \
            [(d.get("name"), d.get("uri"), d["digest"]) for d in deps_of(outside, kind)], kind
    assert deps_of(inside, "source")[0]["digest"] == {"gitCommit": commit}
    assert deps_of(inside, "source")[0]["annotations"]["dirty"] is False
    assert inside["predicate"]["runDetails"]["builder"]["id"] == BUILDER
    assert verify_statement((ws / "out" / "model" / "provenance.json").read_bytes(),
                            Trust(public_keys=(keys.pub,))).ok
    assert os.path.exists(ws / "out" / "model" / "model.safetensors")


LATE_WRITER = """
import time
open("out/early.bin", "w").write("early")
class Late:
    def __del__(self, sleep=time.sleep, open=open):
        sleep(1.0)  # interpreter teardown, after the probe's last exit handler
        if WRITE:
            open("out/late.bin", "w").write("late")
keep = Late()
"""


def test_a_record_assembled_during_teardown_is_redone_if_the_outputs_change(
        tmp_path: Path) -> None:
    """attest assembles the record while the command's interpreter tears down, and keeps it
    only if nothing changed by the time the command has exited: a file written by a
    finaliser at teardown is still a subject."""
    (tmp_path / "out").mkdir()
    for write, expect in ((False, 1.0), (True, 0.0)):
        (tmp_path / "train.py").write_text(f"WRITE = {write}\n" + LATE_WRITER)
        (tmp_path / "prov.json").unlink(missing_ok=True)
        res = mlwarden(["attest", "-o", "prov.json", "--unsigned", "--outputs", "out",
                        "--format", "json", "--", sys.executable, "train.py"],
                       run_env(tmp_path / "hf"), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        report = json.loads(res.stdout)
        assert report["seconds"]["speculated"] == expect
        names = {s["name"] for s in report["subjects"]}
        assert ("out/late.bin" in names) is write and "out/early.bin" in names
        stmt = json.loads((tmp_path / "prov.json").read_text())
        assert {s["name"] for s in stmt["subject"]} == names
