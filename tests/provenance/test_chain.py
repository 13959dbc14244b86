"""The whole chain, once, with real components: train under attest, sign, pull into the
registry with provenance required, deploy, monitor, tamper, alert, trace, restore, verify.

Story: v1 of acme/prod is trained, signed, pulled through the airlock and deployed. v2 is
trained on a poisoned dataset and deployed too. Someone then edits the deployed weights:
the monitor alerts. The response traces the poisoned dataset to v2 and its deployment,
isolates v2 (revoked in the registry), restores the deployment to v1 (the last commit whose
signed ML-BOM and provenance verify) and verifies it; the monitor accepts the restored
deployment without an alert.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from airlock.support import isolated_env, run_cli, serve_registry
from corpus.pki import Pki, make_pki
from mlwarden.approvals import verify_log
from mlwarden.deploy import read_record
from mlwarden.registry.importer import import_directory
from mlwarden.store import Store
from monitor.support import Receiver, start_monitor
from provenance.support import BUILDER, SOURCE, dataset, git, make_workspace, train_under_attest

REPO = "acme/prod"


def ok(proc: object) -> object:
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])  # type: ignore
    return proc


def test_train_sign_pull_deploy_monitor_tamper_trace_restore_verify(
        tmp_path: Path, hf_home: Path, keys: Pki) -> None:
    ops = make_pki(tmp_path / "ops")  # the deployment team's BOM-signing key
    env = isolated_env(tmp_path)
    # ---- 1. train v1 and v2 under attest (v2 on a poisoned dataset), sign both models
    ws = make_workspace(tmp_path / "ws")
    v1 = train_under_attest(ws, hf_home, keys.key)
    shutil.copytree(v1.model, tmp_path / "models" / "v1")
    poisoned = dataset(ws / "data" / "train.jsonl", seed=666)
    poisoned_digest = hashlib.sha256(poisoned.read_bytes()).hexdigest()
    git(ws, "commit", "-q", "-am", "more data")
    shutil.rmtree(ws / "out")
    v2 = train_under_attest(ws, hf_home, keys.key)
    shutil.copytree(v2.model, tmp_path / "models" / "v2")
    for v in ("v1", "v2"):
        d = tmp_path / "models" / v
        ok(run_cli(["sign", str(d), "--key", str(keys.key), "--signature",
                    str(d / "model.sig")], env))
    # ---- 2. pull into the registry with provenance required
    policy = tmp_path / "mlwarden.toml"
    policy.write_text(f"""[policy.provenance]
require = true
builders = [{BUILDER!r}]
source = {SOURCE!r}
source-ref = "refs/heads/main"
public-keys = [{str(keys.pub)!r}]
""")
    upstream = Store.open(tmp_path / "upstream")
    live = serve_registry(upstream)
    store, manifest = tmp_path / "store", tmp_path / "model-manifest.yaml"

    def publish_and_pull(v: str) -> str:
        commit = import_directory(upstream, tmp_path / "models" / v, REPO, approve=True).commit
        assert commit is not None
        proc = ok(run_cli(["pull", REPO, "--endpoint", live.url, "--store", str(store),
                           "--manifest", str(manifest), "--policy", str(policy), "--format",
                           "json"], env, timeout=300))
        doc = json.loads(proc.stdout)  # type: ignore[attr-defined]
        assert any(d["rule"] == "policy-provenance-verified" for d in doc["decisions"])
        return commit.id

    receiver = Receiver()
    mon = None
    try:
        c1 = publish_and_pull("v1")
        # ---- 3. deploy v1, then v2
        dest = tmp_path / "srv" / "prod"

        def deploy(commit: str) -> None:
            ok(run_cli(["deploy", f"{REPO}@{commit}", "--store", str(store), "--to",
                        str(dest), "--key", str(ops.key), "--policy", str(policy)], env))

        deploy(c1)
        c2 = publish_and_pull("v2")
        deploy(c2)
        assert read_record(dest).commit == c2
        # ---- 4. monitor the deployment
        mon = start_monitor(["--deployment", dest, "--public-key", ops.pub, "--state-dir",
                             tmp_path / "monitor-state", "--webhook", receiver.url],
                            tmp_path / "logs")
        assert receiver.alerts() == []
        # ---- 5. tamper with the deployed weights -> alert
        w = dest / "model" / "model.safetensors"
        os.chmod(w, 0o644)
        t0 = time.monotonic()
        with open(w, "r+b") as fh:
            fh.seek(-8, os.SEEK_END)
            fh.write(b"\x00" * 8)
        t, alert = receiver.wait(lambda e: e.get("event") == "alert")
        assert t - t0 < 5.0
        assert alert["rule"] == "monitor-file-modified" and alert["path"].endswith(
            "model.safetensors")
        # ---- 6. trace the poisoned dataset: v2's commit, its tag, the deployment, the run
        proc = run_cli(["trace", poisoned_digest, "--store", str(store), "--format", "json"],
                       env)
        assert proc.returncode == 1, proc.stderr
        meta = json.loads(proc.stdout)["meta"]
        assert meta["commits"] == [f"{REPO}@{c2}"]
        assert meta["deployments"] == ["prod"]
        assert meta["training_runs"] == \
            ["https://github.com/acme/train/actions/runs/4242/attempts/1"]
        # ---- 7. isolate (revoke v2 in the registry), restore, verify
        ok(run_cli(["approve", REPO, c2, "--revoke", "--store", str(store), "--note",
                    "poisoned training data"], env))
        proc = ok(run_cli(["restore", "--store", str(store), "--deployment", str(dest),
                           "--policy", str(policy), "--public-key", str(ops.pub), "--key",
                           str(ops.key), "--note", "INC-1", "--format", "json"], env))
        doc = json.loads(proc.stdout)  # type: ignore[attr-defined]
        assert doc["previous"] == c2 and doc["restored"] == c1
        rec = read_record(dest)
        assert rec.commit == c1 and rec.action == "restore"
        ok(run_cli(["verify", "--sbom", str(rec.sbom), "--public-key", str(ops.pub),
                    str(dest / "model")], env))
        ok(run_cli(["verify-provenance", str(dest / "model"), "--builder", BUILDER,
                    "--source", SOURCE, "--source-branch", "main", "--public-key",
                    str(keys.pub), "--ignore-path", "model.sig"], env))
        ok(run_cli(["verify-signature", str(rec.model_dir), "--signature",
                    str(rec.model_dir / "model.sig"), "--public-key", str(keys.pub)], env))
        # The monitor takes the restored deployment as the new approval: the tampered file
        # is resolved, nothing new is alerted.
        receiver.wait(lambda e: e.get("event") == "resolved")
        time.sleep(1.5)
        assert len(receiver.alerts()) == 1
        # The whole response is in the signed approval log, which still verifies.
        log = verify_log(store)
        assert log.ok, log.problems
        from mlwarden.approvals import read_log

        actions = [(e.kind, e.details.get("action")) for e in read_log(store)]
        assert ("revocation", "revoke") in actions
        assert ("approval", "restore") in actions
    finally:
        if mon is not None:
            mon.stop()
        receiver.close()
        live.stop()
        upstream.close()
