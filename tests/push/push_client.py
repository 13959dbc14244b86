"""Run by the push tests in a fresh interpreter (HF_ENDPOINT is read at import time).

Usage: push_client.py STEPS_JSON. Each step is {"op": ..., ...}; prints one line
``RESULT <json list>`` with each step's result or {"error": class, "message": ...}.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any


def step(s: dict[str, Any]) -> dict[str, Any]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi()
    op = s["op"]
    if op == "xet":
        from huggingface_hub.utils._runtime import is_xet_available

        return {"xet": is_xet_available()}
    if op == "create_repo":
        return {"url": str(api.create_repo(s["repo"], exist_ok=s.get("exist_ok", True)))}
    if op == "delete_repo":
        api.delete_repo(s["repo"])
        return {}
    if op == "upload_folder":
        info = api.upload_folder(repo_id=s["repo"], folder_path=s["folder"],
                                 commit_message=s.get("message", "upload folder"),
                                 create_pr=s.get("create_pr", False),
                                 revision=s.get("revision"))
        return {"oid": info.oid, "pr_revision": info.pr_revision, "pr_num": info.pr_num}
    if op == "upload_file":
        info = api.upload_file(path_or_fileobj=s["local"], path_in_repo=s["path"],
                               repo_id=s["repo"], commit_message=s.get("message", "upload file"),
                               create_pr=s.get("create_pr", False), revision=s.get("revision"))
        return {"oid": info.oid, "pr_revision": info.pr_revision, "pr_num": info.pr_num}
    if op == "create_commit":
        ops: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=local)
                          for p, local in s.get("add", {}).items()]
        ops += [CommitOperationDelete(path_in_repo=p) for p in s.get("delete", [])]
        info = api.create_commit(repo_id=s["repo"], operations=ops,
                                 commit_message=s.get("message", "commit"),
                                 create_pr=s.get("create_pr", False), revision=s.get("revision"))
        return {"oid": info.oid, "pr_revision": info.pr_revision, "pr_num": info.pr_num}
    if op == "delete_file":
        info = api.delete_file(s["path"], repo_id=s["repo"],
                               commit_message=s.get("message", "delete"))
        return {"oid": info.oid}
    if op == "create_branch":
        api.create_branch(s["repo"], branch=s["branch"], revision=s.get("revision"),
                          exist_ok=s.get("exist_ok", False))
        return {}
    if op == "create_tag":
        api.create_tag(s["repo"], tag=s["tag"], revision=s.get("revision"))
        return {}
    if op == "delete_tag":
        api.delete_tag(s["repo"], tag=s["tag"])
        return {}
    if op == "refs":
        r = api.list_repo_refs(s["repo"], include_pull_requests=True)
        return {"branches": {b.name: b.target_commit for b in r.branches},
                "tags": {t.name: t.target_commit for t in r.tags},
                "prs": {p.name: p.target_commit for p in r.pull_requests or []}}
    if op == "info":
        info = api.model_info(s["repo"], revision=s.get("revision"))
        return {"sha": info.sha, "files": sorted(x.rfilename for x in info.siblings or [])}
    if op == "download":
        from huggingface_hub import hf_hub_download

        p = hf_hub_download(s["repo"], s["path"], revision=s.get("revision"))
        return {"bytes": Path(p).read_bytes().hex() if s.get("hex") else len(Path(p).read_bytes())}
    if op == "push_to_hub":
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(s["local"])
        tok = AutoTokenizer.from_pretrained(s["local"])
        tok.push_to_hub(s["repo"], commit_message="tokenizer")
        info = model.push_to_hub(s["repo"], commit_message=s.get("message", "model"),
                                 create_pr=s.get("create_pr", False))
        return {"oid": info.oid, "pr_revision": info.pr_revision}
    if op == "from_pretrained":
        import torch
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(s["repo"], revision=s.get("revision"))
        tok = AutoTokenizer.from_pretrained(s["repo"], revision=s.get("revision"))
        with torch.no_grad():
            out = model(**tok("hello world", return_tensors="pt")).last_hidden_state
        return {"param_sum": float(sum(p.detach().double().sum() for p in model.parameters())),
                "shape": list(out.shape)}
    if op == "whoami":
        return {"whoami": api.whoami()}
    raise ValueError(f"unknown op {op}")


def main() -> None:
    steps = json.loads(sys.argv[1])
    out = []
    for s in steps:
        try:
            out.append({"ok": True, **step(s)})
        except Exception as exc:  # the tests assert on the class and message
            out.append({"ok": False, "error": type(exc).__name__, "message": str(exc),
                        "trace": traceback.format_exc()[-2000:]})
            if s.get("stop_on_error", True):
                break
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
