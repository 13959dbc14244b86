"""A real, tiny training run for the provenance tests: a git workspace with a Trainer
script, a YAML config, a generated JSONL dataset, and a base model in a Hugging Face cache
(offline), run under ``mlwarden attest`` with GitHub Actions' environment simulated."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

BASE_REPO = "acme/tiny-base"
BASE_COMMIT = "b" * 40
SOURCE = "github.com/acme/train"
WORKFLOW = "acme/train/.github/workflows/train.yml@refs/heads/main"
BUILDER = f"https://github.com/{WORKFLOW}"

TRAIN = '''\
import json, sys
import torch
import yaml
from transformers import AutoModelForMaskedLM, Trainer, TrainingArguments

cfg = yaml.safe_load(open("config/train.yaml"))
out = sys.argv[1]
rows = [json.loads(line) for line in open(cfg["data"])]


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return len(rows)

    def __getitem__(self, i):
        ids = torch.tensor(rows[i]["input_ids"])
        return {"input_ids": ids, "labels": ids.clone()}


torch.manual_seed(cfg["seed"])
model = AutoModelForMaskedLM.from_pretrained(cfg["base_model"])
args = TrainingArguments(output_dir=out + "/trainer", max_steps=cfg["steps"],
                         per_device_train_batch_size=8, save_strategy="no", report_to=[],
                         logging_strategy="no", use_cpu=True, seed=cfg["seed"],
                         disable_tqdm=True, dataloader_num_workers=0)
Trainer(model=model, args=args, train_dataset=Rows()).train()
model.save_pretrained(out + "/model")
'''


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, "GIT_AUTHOR_NAME": "t",
                                          "GIT_AUTHOR_EMAIL": "t@example.com",
                                          "GIT_COMMITTER_NAME": "t",
                                          "GIT_COMMITTER_EMAIL": "t@example.com"}).stdout


def dataset(path: Path, seed: int, rows: int = 64) -> Path:
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"input_ids": [rnd.randrange(5, 64) for _ in range(16)]})
                            + "\n" for _ in range(rows)))
    return path


def make_workspace(root: Path, steps: int = 3, seed: int = 7) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", "https://github.com/acme/train.git")
    (root / "train.py").write_text(TRAIN)
    (root / "config").mkdir()
    (root / "config" / "train.yaml").write_text(
        f"base_model: {BASE_REPO}\ndata: data/train.jsonl\nsteps: {steps}\nseed: 0\n")
    dataset(root / "data" / "train.jsonl", seed)
    (root / ".gitignore").write_text("out/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "training code")
    return root


def make_base_model(hf_home: Path) -> Path:
    """BertForMaskedLM (hidden 32) as acme/tiny-base@bbbb... in an offline HF cache."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    repo = hf_home / "hub" / f"models--{BASE_REPO.replace('/', '--')}"
    snap = repo / "snapshots" / BASE_COMMIT
    if snap.exists():
        return snap
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=32)
    BertForMaskedLM(cfg).save_pretrained(snap, safe_serialization=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(BASE_COMMIT)
    return snap


def github_env(commit: str) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/train", "GITHUB_WORKFLOW_REF": WORKFLOW,
            "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SHA": commit,
            "GITHUB_REF": "refs/heads/main", "RUNNER_ENVIRONMENT": "github-hosted",
            "GITHUB_EVENT_NAME": "push"}


def run_env(hf_home: Path, **extra: str) -> dict[str, str]:
    """No network, no user HF token, no CI variables of the machine running the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_", "GITHUB_", "GITLAB",
                                "CI_", "RUNNER_", "SIGSTORE"))}
    env.update({"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false",
                "OMP_NUM_THREADS": "1", "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"})
    env.update(extra)
    return env


def mlwarden(args: list[str], env: dict[str, str], cwd: Path | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class Trained:
    workspace: Path
    commit: str
    model: Path  # out/model
    record: Path  # the signed provenance (inside the model: provenance.json)
    hf_home: Path
    env: dict[str, str]


def train_under_attest(workspace: Path, hf_home: Path, key: Path, *extra: str,
                       output_rel: str = "out/model/provenance.json",
                       env_extra: dict[str, str] | None = None) -> Trained:
    commit = git(workspace, "rev-parse", "HEAD").strip()
    env = run_env(hf_home, **github_env(commit), **(env_extra or {}))
    res = mlwarden(["attest", "-o", output_rel, "--key", str(key), "--outputs", "out",
                    "--format", "json", *extra, "--", sys.executable, "train.py", "out"],
                   env, cwd=workspace)
    assert res.returncode == 0, res.stderr[-3000:]
    return Trained(workspace, commit, workspace / "out" / "model", workspace / output_rel,
                   hf_home, env)
