"""Seed files for fuzzing: one small, valid file per format the scanner reads, written by the
real libraries (torch, joblib, numpy, safetensors, gguf, onnx, h5py, py7zr ...).

A seed is its bytes plus the file name a loader would use (the text reader picks its
analysis by name) and any sibling files (ONNX external data). Seeds are generated once
into a directory and reloaded from there, so fuzzing workers never import torch.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Formats whose seeds need only the standard library, numpy and the light writers: the
# quick regression tests use these so that they do not pay for importing torch.
LIGHT = ("pickle_p0", "pickle_p2", "pickle_p4", "pickle_p5", "npy_numeric", "npy_object",
         "npz", "safetensors", "gguf", "onnx", "onnx_external", "savedmodel", "zip_pickle",
         "tar_pickle", "gzip_pickle", "bz2_pickle", "xz_pickle", "zlib_pickle", "lz4_pickle",
         "zstd_pickle", "tokenizer_config", "config_auto_map", "modeling_py",
         "chat_template", "h5_keras", "keras_v3")


@dataclass(frozen=True)
class Seed:
    name: str
    filename: str
    data: bytes
    siblings: dict[str, bytes] = field(default_factory=dict)

    def write(self, directory: Path, data: bytes | None = None) -> Path:
        """Write the seed (or a mutant of it) into ``directory`` under its loader name."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, blob in self.siblings.items():
            (directory / name).write_bytes(blob)
        p = directory / self.filename
        p.write_bytes(self.data if data is None else data)
        return p


def _tmp_bytes(tmp: Path, name: str, write: Callable[[Path], object]) -> bytes:
    p = tmp / name
    write(p)
    return p.read_bytes()


# ----------------------------------------------------------------- builders


def _misc() -> dict[str, object]:
    import collections
    import datetime

    return {"od": collections.OrderedDict(a=1), "dt": datetime.datetime(2024, 1, 2),
            "set": {1, 2}, "c": 1 + 2j, "s": "text", "b": b"\x00\x01", "f": 1.5,
            "n": [None, True, (1, 2)], "big": 1 << 70}


def _pickles() -> dict[str, Seed]:
    out = {}
    for proto in range(6):
        out[f"pickle_p{proto}"] = Seed(f"pickle_p{proto}", "model.pkl",
                                       pickle.dumps(_misc(), protocol=proto))
    return out


def _numpy() -> dict[str, Seed]:
    import numpy as np

    def npy(arr: Any) -> bytes:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()

    npz = io.BytesIO()
    np.savez(npz, a=np.arange(6), o=np.array(["x", None], dtype=object))
    npzc = io.BytesIO()
    np.savez_compressed(npzc, a=np.arange(6), o=np.array(["x", None], dtype=object))
    return {
        "npy_numeric": Seed("npy_numeric", "a.npy", npy(np.arange(12).reshape(3, 4))),
        "npy_object": Seed("npy_object", "o.npy", npy(np.array(["a", None, 3], dtype=object))),
        "npz": Seed("npz", "arrays.npz", npz.getvalue()),
        "npz_compressed": Seed("npz_compressed", "arrays_c.npz", npzc.getvalue()),
    }


def _safetensors() -> dict[str, Seed]:
    import numpy as np
    from safetensors.numpy import save

    data = save({"a": np.ones((2, 3), np.float32), "b": np.arange(4, dtype=np.int64)},
                metadata={"format": "pt"})
    return {"safetensors": Seed("safetensors", "model.safetensors", data)}


def _gguf(tmp: Path) -> dict[str, Seed]:
    import gguf
    import numpy as np

    def write(p: Path) -> None:
        w = gguf.GGUFWriter(str(p), "llama")
        w.add_chat_template("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
                            "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")
        w.add_token_list(["<s>", "a", "b"])
        w.add_array("x.nested", [[1, 2], ["s"]])
        w.add_uint32("llama.context_length", 16)
        w.add_tensor("w", np.ones(8, np.float32))
        w.add_tensor("v", np.zeros((2, 2), np.float16))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    return {"gguf": Seed("gguf", "model.gguf", _tmp_bytes(tmp, "m.gguf", write))}


def _onnx() -> dict[str, Seed]:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sub = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [],
                            [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["s"]),
         helper.make_node("If", ["c"], ["y"], then_branch=sub, else_branch=sub)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(True), "c"),
         numpy_helper.from_array(np.ones(2, np.float32), "w")])
    model = helper.make_model(g)
    plain = model.SerializeToString()
    # External data: the initializer's bytes live in a sibling file.
    ext = onnx.ModelProto()
    ext.CopyFrom(model)
    t = ext.graph.initializer[1]
    raw = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return {
        "onnx": Seed("onnx", "model.onnx", plain),
        "onnx_external": Seed("onnx_external", "model.onnx", ext.SerializeToString(),
                              {"weights.bin": raw}),
    }


def _tf_keras(tmp: Path) -> dict[str, Seed]:
    from corpus import formats as cf

    return {
        "savedmodel": Seed("savedmodel", "saved_model.pb", cf.benign_saved_model()),
        "h5_keras": Seed("h5_keras", "model.h5",
                         cf.keras2_h5(tmp / "k.h5", [cf.keras2_lambda_layer()]).read_bytes()),
        "keras_v3": Seed("keras_v3", "model.keras",
                         cf.keras_v3_zip(tmp / "k.keras", cf.keras_config("lambda-v3"))
                         .read_bytes()),
    }


def _wrappers(payload: bytes) -> dict[str, Seed]:
    import lz4.frame
    import zstandard

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner/model.pkl", payload)
        z.writestr("README.txt", b"hello")
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as t:
        for name, blob in (("model.pkl", payload), ("notes.txt", b"hi")):
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            t.addfile(ti, io.BytesIO(blob))
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        ti = tarfile.TarInfo("model.pkl")
        ti.size = len(payload)
        t.addfile(ti, io.BytesIO(payload))
    return {
        "zip_pickle": Seed("zip_pickle", "bundle.zip", zbuf.getvalue()),
        "tar_pickle": Seed("tar_pickle", "bundle.tar", tbuf.getvalue()),
        "tgz_pickle": Seed("tgz_pickle", "bundle.tar.gz", tgz.getvalue()),
        "gzip_pickle": Seed("gzip_pickle", "model.pkl.gz", gzip.compress(payload)),
        "bz2_pickle": Seed("bz2_pickle", "model.pkl.bz2", bz2.compress(payload)),
        "xz_pickle": Seed("xz_pickle", "model.pkl.xz", lzma.compress(payload)),
        "lzma_pickle": Seed("lzma_pickle", "model.pkl.lzma",
                            lzma.compress(payload, format=lzma.FORMAT_ALONE)),
        "zlib_pickle": Seed("zlib_pickle", "model.pkl.z", zlib.compress(payload)),
        "lz4_pickle": Seed("lz4_pickle", "model.pkl.lz4", lz4.frame.compress(payload)),
        "zstd_pickle": Seed("zstd_pickle", "model.pkl.zst",
                            zstandard.ZstdCompressor().compress(payload)),
    }


def _sevenz(payload: bytes) -> dict[str, Seed]:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(payload, "model.pkl")
        z.writestr(b"hello", "notes.txt")
    return {"7z_pickle": Seed("7z_pickle", "bundle.7z", buf.getvalue())}


_MODELING = '''"""A small modeling file as trust_remote_code would import it."""
import math
import os

import torch
from torch import nn

CACHE = os.environ.get("HF_HOME", "~/.cache")


class TinyConfig:
    model_type = "tiny"

    def __init__(self, hidden: int = 8, **kwargs):
        self.hidden = hidden
        self.extra = dict(kwargs)


class TinyModel(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.proj = nn.Linear(config.hidden, config.hidden)
        self.scale = math.sqrt(config.hidden)

    def forward(self, x):
        with open(os.path.join(CACHE, "log.txt"), "a") as fh:
            fh.write(str(x.shape))
        return self.proj(x) / self.scale
'''


def _text() -> dict[str, Seed]:
    template = ("{% for message in messages %}{% if message['role'] == 'system' %}"
                "<|system|>{{ message['content'] | trim }}{% else %}<|{{ message.role }}|>"
                "{{ message.content }}{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    tok = {"add_bos_token": True, "bos_token": "<s>", "chat_template": template,
           "auto_map": {"AutoTokenizer": ["tokenization_tiny.TinyTokenizer", None]},
           "model_max_length": 2048}
    cfg = {"architectures": ["TinyModel"], "model_type": "tiny", "hidden": 8,
           "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig",
                        "AutoModel": "modeling_tiny.TinyModel",
                        "AutoModelForCausalLM": "other/repo--modeling_tiny.TinyModel"},
           "custom_pipelines": {"tiny": {"impl": "pipeline_tiny.TinyPipeline"}}}
    return {
        "tokenizer_config": Seed("tokenizer_config", "tokenizer_config.json",
                                 json.dumps(tok, indent=2).encode()),
        "config_auto_map": Seed("config_auto_map", "config.json",
                                json.dumps(cfg, indent=2).encode()),
        "modeling_py": Seed("modeling_py", "modeling_tiny.py", _MODELING.encode()),
        "chat_template": Seed("chat_template", "chat_template.jinja", template.encode()),
    }


def _torch(tmp: Path) -> dict[str, Seed]:
    import dill
    import joblib
    import numpy as np
    import torch

    state = {"w": torch.zeros(3, 2), "b": torch.ones(2, dtype=torch.bfloat16),
             "i": torch.arange(4)}
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    arrays = {"a": np.arange(10), "o": np.array(["x", None], dtype=object), "m": {"k": 1}}

    def tsave(obj: object, legacy: bool = False) -> Callable[[Path], object]:
        return lambda p: torch.save(obj, p, _use_new_zipfile_serialization=not legacy)

    return {
        "torch_zip": Seed("torch_zip", "pytorch_model.bin",
                          _tmp_bytes(tmp, "t.pt", tsave(state))),
        "torch_legacy": Seed("torch_legacy", "model_legacy.pt",
                             _tmp_bytes(tmp, "l.pt", tsave(state, legacy=True))),
        "torch_module": Seed("torch_module", "module.pt", _tmp_bytes(tmp, "n.pt", tsave(net))),
        "torchscript": Seed("torchscript", "scripted.pt",
                            _tmp_bytes(tmp, "s.pt", lambda p: torch.jit.save(scripted, str(p)))),
        "joblib": Seed("joblib", "model.joblib",
                       _tmp_bytes(tmp, "j.joblib", lambda p: joblib.dump(arrays, p))),
        "joblib_zlib": Seed("joblib_zlib", "model.joblib.z", _tmp_bytes(
            tmp, "j.z", lambda p: joblib.dump(arrays, p, compress=("zlib", 3)))),
        "joblib_lz4": Seed("joblib_lz4", "model.joblib.lz4", _tmp_bytes(
            tmp, "j.lz4", lambda p: joblib.dump(arrays, p, compress=("lz4", 3)))),
        "joblib_xz": Seed("joblib_xz", "model.joblib.xz", _tmp_bytes(
            tmp, "j.xz", lambda p: joblib.dump(arrays, p, compress=("xz", 3)))),
        "dill": Seed("dill", "fn.dill", dill.dumps({"f": len, "t": type(None), "s": {"x"}})),
        "cloudpickle": Seed("cloudpickle", "cp.pkl", _cloudpickle()),
    }


def _cloudpickle() -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps({"a": [1, 2], "k": int}))


def build_seeds(tmp: Path, *, light: bool = False) -> dict[str, Seed]:
    """Every seed (``light``: only those that do not need torch, dill or joblib)."""
    tmp.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, Seed] = {}
    seeds.update(_pickles())
    seeds.update(_numpy())
    seeds.update(_safetensors())
    seeds.update(_gguf(tmp))
    seeds.update(_onnx())
    seeds.update(_tf_keras(tmp))
    seeds.update(_wrappers(seeds["pickle_p2"].data))
    seeds.update(_text())
    if light:
        return {k: v for k, v in seeds.items() if k in LIGHT}
    seeds.update(_sevenz(seeds["pickle_p4"].data))
    seeds.update(_torch(tmp))
    return seeds


def save_seeds(seeds: dict[str, Seed], directory: Path) -> None:
    """Persist seeds as ``<name>/<filename>`` plus siblings, with an index."""
    index = {}
    for name, seed in seeds.items():
        seed.write(directory / name)
        index[name] = {"filename": seed.filename, "siblings": sorted(seed.siblings)}
    (directory / "index.json").write_text(json.dumps(index, indent=1))


def load_seeds(directory: Path) -> dict[str, Seed]:
    index = json.loads((directory / "index.json").read_text())
    out = {}
    for name, meta in index.items():
        d = directory / name
        out[name] = Seed(name, meta["filename"], (d / meta["filename"]).read_bytes(),
                         {s: (d / s).read_bytes() for s in meta["siblings"]})
    return out
