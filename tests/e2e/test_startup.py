"""The plain pickle scan path stays light: no heavy library is imported to scan a pickle."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from e2e.support import env

HEAVY = ("onnx", "h5py", "numpy", "torch", "fastapi", "uvicorn", "cryptography",
         "huggingface_hub", "rapidfuzz", "jinja2", "transformers", "safetensors", "gguf",
         "yaml", "starlette", "pydantic", "sklearn", "joblib", "watchdog")


def _imported(args: list[str], cwd: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlwarden", *args],
                          cwd=cwd, env=env(), capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr
    return {line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_pickle_scan_imports_no_heavy_module(tmp_path: Path) -> None:
    (tmp_path / "small.pkl").write_bytes(pickle.dumps({"lr": 0.1}))
    for args in (["scan", "small.pkl"], ["scan", "small.pkl", "--format", "sarif"]):
        mods = _imported(args, tmp_path)
        assert "mlwarden" in mods  # the measurement itself works
        assert not mods & set(HEAVY), (args, sorted(mods & set(HEAVY)))


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    mods = _imported(["--help"], tmp_path)
    assert "click" in mods
    assert not mods & set(HEAVY), sorted(mods & set(HEAVY))
