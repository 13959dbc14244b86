"""Run in a subprocess by the scale tests (HF_ENDPOINT is read at import time).

Usage: hub_download.py snapshot REPO            -> sha256 of every downloaded file
       hub_download.py transformers REPO        -> from_pretrained + a forward pass
Prints ``RESULT <json>`` on success.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def sha(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def snapshot(repo: str) -> dict[str, object]:
    from huggingface_hub import snapshot_download

    root = Path(snapshot_download(repo))
    return {"files": {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob("*"))
                      if p.is_file()}}


def transformers(repo: str) -> dict[str, object]:
    import torch
    from huggingface_hub import hf_hub_download
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(repo)
    model = AutoModel.from_pretrained(repo)
    with torch.no_grad():
        out = model(**tok("hello world", return_tensors="pt")).last_hidden_state
    weights = Path(hf_hub_download(repo, "model.safetensors"))
    return {"shape": list(out.shape), "weights_sha256": sha(weights),
            "param_sum": float(sum(p.detach().double().sum() for p in model.parameters()))}


if __name__ == "__main__":
    mode, repo = sys.argv[1], sys.argv[2]
    result = snapshot(repo) if mode == "snapshot" else transformers(repo)
    print("RESULT " + json.dumps(result), flush=True)
