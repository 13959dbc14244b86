"""Run by test_clients.py in a subprocess (HF_ENDPOINT is read at import time).

Usage: client_checks.py online|offline REPO MODEL_DIR
Prints one JSON object: check name -> result (or "raised <ExceptionClass>").
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as exc:  # the test asserts on the class name
        return f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def model_checks(repo: str, out: dict[str, object]) -> None:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    cfg = AutoConfig.from_pretrained(repo)
    out["config_hidden_size"] = cfg.hidden_size
    tok = AutoTokenizer.from_pretrained(repo)
    out["tokens"] = tok("hello world")["input_ids"]
    model = AutoModel.from_pretrained(repo)
    out["param_sum"] = float(sum(p.detach().double().sum() for p in model.parameters()))
    with torch.no_grad():
        out["output_shape"] = list(model(**tok("hello world", return_tensors="pt"))
                                   .last_hidden_state.shape)


def online(repo: str, model_dir: Path) -> dict[str, object]:
    from huggingface_hub import (
        get_paths_info,
        hf_hub_download,
        list_repo_files,
        list_repo_refs,
        list_repo_tree,
        model_info,
        snapshot_download,
    )

    out: dict[str, object] = {}
    info = model_info(repo)
    out["info_sha"] = info.sha
    out["info_siblings"] = sorted(s.rfilename for s in info.siblings or [])
    out["info_v1_sha"] = model_info(repo, revision="release/v1").sha
    out["files"] = list_repo_files(repo)
    out["tree_top"] = sorted(e.path for e in list_repo_tree(repo))
    refs = list_repo_refs(repo)
    out["branches"] = {b.name: b.target_commit for b in refs.branches}
    out["tags"] = {t.name: t.target_commit for t in refs.tags}
    pinfo = get_paths_info(repo, ["config.json", "model.safetensors", "nope.txt", "sub"])
    out["paths_info"] = {p.path: [type(p).__name__, getattr(p, "size", None),
                                  getattr(getattr(p, "lfs", None), "sha256", None)]
                         for p in pinfo}
    cfg = hf_hub_download(repo, "config.json")
    out["download_ok"] = sha(Path(cfg)) == sha(model_dir / "config.json")
    tagged = hf_hub_download(repo, "config.json", revision="release/v1")
    out["download_tag_ok"] = sha(Path(tagged)) == sha(model_dir / "config.json")
    pinned = hf_hub_download(repo, "model.safetensors", revision=info.sha)
    out["download_sha_ok"] = sha(Path(pinned)) == sha(model_dir / "model.safetensors")
    snap = Path(snapshot_download(repo))
    out["snapshot_files"] = sorted(str(p.relative_to(snap)) for p in snap.rglob("*")
                                   if p.is_file())
    out["snapshot_ok"] = all(sha(snap / f) == sha(model_dir / f)
                             for f in out["snapshot_files"])  # type: ignore[union-attr]
    model_checks(repo, out)
    out["err_pending"] = outcome(lambda: model_info("acme/pending"))
    out["err_pending_download"] = outcome(lambda: hf_hub_download("acme/pending",
                                                                  "config.json"))
    out["err_unknown_repo"] = outcome(lambda: hf_hub_download("nobody/nothing", "x.json"))
    out["err_revision"] = outcome(lambda: hf_hub_download(repo, "config.json",
                                                          revision="no-such-branch"))
    out["err_revision_info"] = outcome(lambda: model_info(repo, revision="no-such-branch"))
    out["err_unapproved_sha"] = outcome(lambda: hf_hub_download(
        repo, "config.json", revision=sys.argv[4]))
    out["err_entry"] = outcome(lambda: hf_hub_download(repo, "missing.bin"))
    return out


def offline(repo: str, model_dir: Path) -> dict[str, object]:
    from huggingface_hub import hf_hub_download, snapshot_download

    out: dict[str, object] = {}
    out["download_ok"] = sha(Path(hf_hub_download(repo, "config.json"))) == \
        sha(model_dir / "config.json")
    out["snapshot_ok"] = Path(snapshot_download(repo)).joinpath("model.safetensors").is_file()
    model_checks(repo, out)
    return out


if __name__ == "__main__":
    mode, repo, model_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    result = online(repo, model_dir) if mode == "online" else offline(repo, model_dir)
    print("RESULT " + json.dumps(result))
