"""Mutated headers of every format: always a verdict with a reason, never an internal error,
a traceback or a hang."""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save as save_bytes

from corpus import formats as corpus
from formats.fmt_helpers import new_ctx, scan_bytes
from mlwarden.report.model import Location
from mlwarden.scan.formats.keras import analyze_keras_archive_config
from mlwarden.scan.templates import analyze_template


def _gguf(tmp: Path) -> bytes:
    p = tmp / "f.gguf"
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_token_list(["a", "b", "c"])
    w.add_array("x.nested", [[1, 2], ["s"]])
    w.add_tensor("w", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p.read_bytes()


def _onnx() -> bytes:
    sub = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "b", [],
                            [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=sub, else_branch=sub)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(True), "c")])
    return helper.make_model(g).SerializeToString()


def _mutations(data: bytes, rng: random.Random, n: int, span: int) -> list[bytes]:
    out = []
    for _ in range(n):
        b = bytearray(data)
        kind = rng.randrange(4)
        if kind == 0:  # flip bytes in the header region
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(min(span, len(b)))] = rng.randrange(256)
        elif kind == 1:  # truncate
            del b[rng.randrange(1, len(b)):]
        elif kind == 2:  # overwrite a 64-bit word with an extreme value
            pos = rng.randrange(min(span, len(b) - 8))
            b[pos:pos + 8] = struct.pack("<Q", rng.choice([0, 1 << 63, (1 << 64) - 1,
                                                           1 << 40, 255]))
        else:  # insert junk
            pos = rng.randrange(min(span, len(b)))
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("fmt", ["safetensors", "gguf", "onnx", "savedmodel"])
def test_mutated_headers_never_crash(fmt: str, tmp_path: Path) -> None:
    rng = random.Random(f"mlwarden-{fmt}")
    base = {
        "safetensors": lambda: save_bytes({"a": np.ones(3, np.float32),
                                           "b": np.zeros((2, 2), np.int8)}),
        "gguf": lambda: _gguf(tmp_path),
        "onnx": _onnx,
        "savedmodel": corpus.benign_saved_model,
    }[fmt]()
    start = time.perf_counter()
    for blob in _mutations(base, rng, 300, 512):
        t0 = time.perf_counter()
        r = scan_bytes(blob, "fuzz")
        assert time.perf_counter() - t0 < 2.0
        bad = [f for f in r.findings if f.rule == "internal-error"]
        assert not bad, (fmt, bad, blob[:64])
        assert r.verdict is not None
    assert time.perf_counter() - start < 30


def test_mutated_keras_configs_never_crash() -> None:
    rng = random.Random("keras")
    base = json.dumps(corpus.keras_config("lambda-v3")).encode()
    for blob in _mutations(base, rng, 200, len(base)):
        ctx = new_ctx()
        analyze_keras_archive_config(blob, ctx, "config.json")


def test_mutated_templates_never_crash() -> None:
    rng = random.Random("tpl")
    src = (Path(__file__).parent / "chat_templates" / "Qwen-Qwen2.5-Instruct.jinja").read_bytes()
    for blob in _mutations(src, rng, 200, len(src)):
        ctx = new_ctx()
        analyze_template(blob.decode("utf-8", "replace"), ctx, Location())
