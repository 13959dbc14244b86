"""Run by test_guard.py in a subprocess (optionally under `mlwarden run`).

Usage: guard_checks.py plain|guard REPO [MALICIOUS_PICKLE]
Prints one JSON object: check name -> result (or "raised <ExceptionClass>: message").
"""

from __future__ import annotations

import io
import json
import os
import sys


def outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return fn()
    except Exception as exc:  # the test asserts on the class name and rule id
        return f"raised {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"


def main() -> None:
    mode, repo = sys.argv[1], sys.argv[2]
    out: dict[str, object] = {}
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    out["config"] = outcome(lambda: AutoConfig.from_pretrained(repo).model_type)
    out["tokenizer"] = outcome(
        lambda: AutoTokenizer.from_pretrained(repo)("hello world")["input_ids"])
    out["model"] = outcome(lambda: type(AutoModel.from_pretrained(repo)).__name__)
    if mode == "guard":
        import torch

        buf = io.BytesIO()
        torch.save({"w": torch.ones(1)}, buf)
        out["torch_unsafe"] = outcome(
            lambda: torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
        out["torch_default"] = outcome(
            lambda: float(torch.load(io.BytesIO(buf.getvalue()))["w"][0]))
        if len(sys.argv) > 3:
            out["torch_malicious"] = outcome(lambda: torch.load(sys.argv[3]))
        out["no_safetensors"] = outcome(
            lambda: AutoModel.from_pretrained(repo, use_safetensors=False))
        from transformers import dynamic_module_utils
        from transformers.models.auto import configuration_auto

        out["remote_code_bound"] = outcome(
            lambda: configuration_auto.resolve_trust_remote_code(True, repo, False, True))
        out["remote_code_module"] = outcome(
            lambda: dynamic_module_utils.resolve_trust_remote_code(True, repo, False, True))
        import mlwarden.guard as g

        st = g.state()
        out["checks"] = st.checks if st is not None else None
        out["env"] = {k: os.environ.get(k) for k in (
            "HF_HUB_OFFLINE", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "DISABLE_SAFETENSORS_CONVERSION")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
