"""Repository-level checks: pickle twins, weight indexes, unsafe names, LFS pointers,
code that loaders import but the scan could not analyse, diffusers/PEFT/pipeline configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from mlwarden.report.model import Report, Verdict
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.repository import unsafe_reason


def rules_of(report: Report, path: Path) -> dict[str, str]:
    for f in report.files:
        if f.path == str(path):
            return {x.rule: x.message for x in f.findings}
    raise AssertionError(f"{path} not reported")


def test_pickle_weights_with_safetensors_twin(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    root = tmp_path / "repo"
    root.mkdir()
    tensors = {"w": np.zeros((2, 2), dtype=np.float32)}
    save_file(tensors, str(root / "model.safetensors"))
    torch.save({"w": torch.zeros(2, 2)}, root / "pytorch_model.bin")
    save_file(tensors, str(root / "model-00001-of-00002.safetensors"))
    torch.save({"w": torch.zeros(2, 2)}, root / "pytorch_model-00001-of-00002.bin")
    torch.save({"w": torch.zeros(2, 2)}, root / "lonely.pt")
    report = scan_paths([str(root)])
    for name in ("pytorch_model.bin", "pytorch_model-00001-of-00002.bin"):
        msg = rules_of(report, root / name)["repo-pickle-twin"]
        assert "safetensors" in msg and name in msg
    assert "repo-pickle-twin" not in rules_of(report, root / "lonely.pt")
    assert "repo-pickle-twin" not in rules_of(report, root / "model.safetensors")


def test_weight_index_missing_and_unsafe_shards(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    save_file({"a": np.zeros(2, dtype=np.float32)}, str(root / "model-00001-of-00003.safetensors"))
    (root / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 16},
        "weight_map": {"a": "model-00001-of-00003.safetensors",
                       "b": "model-00002-of-00003.safetensors",
                       "c": "../../outside.safetensors"},
    }))
    report = scan_paths([str(root)])
    got = rules_of(report, root / "model.safetensors.index.json")
    assert "model-00002-of-00003.safetensors" in got["repo-missing-shard"]
    assert "1 of 3" in got["repo-missing-shard"]
    assert "../../outside.safetensors" in got["repo-unsafe-path"]
    assert report.verdict is Verdict.UNSCANNABLE


def test_lfs_pointer_and_text_named_like_weights(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 42\n")
    (root / "pytorch_model.bin").write_text("hello, I am not weights\n")
    report = scan_paths([str(root)])
    assert "repo-lfs-pointer" in rules_of(report, root / "model.safetensors")
    assert "repo-weight-not-analysed" in rules_of(report, root / "pytorch_model.bin")


def test_python_file_that_is_not_text(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_b.M"}}))
    (root / "modeling_b.py").write_bytes(b"\x00\x01binary\xff" * 10)
    report = scan_paths([str(root)])
    assert "repo-code-not-analysed" in rules_of(report, root / "modeling_b.py")


def test_backslash_traversal_in_file_name(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "..\\..\\evil.py").write_text("x = 1\n")
    report = scan_paths([str(root)])
    assert "repo-unsafe-path" in rules_of(report, root / "..\\..\\evil.py")


@pytest.mark.parametrize("name, member, reason", [
    ("../x", True, "'..' component"), ("/etc/passwd", True, "absolute path"),
    ("C:\\Windows\\x", True, "drive or UNC path"), ("..foo", True, None),
    ("a/../b", False, None), ("ok.bin", True, None), ("a\nb", False, "control character"),
])
def test_unsafe_reason(name: str, member: bool, reason: str | None) -> None:
    got = unsafe_reason(name, member)
    assert (got is None) if reason is None else (reason in got)


def test_diffusers_custom_components_and_pipelines(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": ["pipeline_mine", "MyPipeline"],
        "unet": ["my_unet_model", "MyUNetModel"],
        "scheduler": ["diffusers", "DDIMScheduler"],
    }))
    (root / "pipeline_mine.py").write_text("import os\nos.system('id')\n")
    (root / "unet" / "my_unet_model.py").write_text("class MyUNetModel:\n    pass\n")
    (root / "config.json").write_text(json.dumps({
        "custom_pipelines": {"pair-classification": {"impl": "pair_pipe.PairPipeline",
                                                      "pt": ["AutoModel"]}}}))
    report = scan_paths([str(root)])
    (summary,) = [f for f in report.files if f.path == str(root)]
    msg = summary.findings[0].message
    assert "pipeline_mine.py (malicious" in msg and "unet/my_unet_model.py (clean" in msg
    assert "pair_pipe.py" in rules_of(report, root / "config.json")["repo-missing-code"]


def test_adapter_auto_mapping(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA",
        "auto_mapping": {"base_model_class": "system", "parent_library": "os"}}))
    report = scan_paths([str(root)])
    assert "config-adapter-auto-mapping" in rules_of(report, root / "adapter_config.json")
