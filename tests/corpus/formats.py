"""Generated samples for the non-pickle formats: benign files from the real writers and one
file per malicious class. Payloads are inert (nothing here is ever loaded by a framework);
where a payload names a command it only touches a marker file.

``build_all(directory)`` writes every sample and returns ``{name: (path, expected verdict)}``
for corpus-wide tests and benchmarks.
"""

from __future__ import annotations

import base64
import json
import marshal
import struct
import zipfile
from pathlib import Path

MARKER_CMD = "touch /tmp/mlwarden-marker"

# ----------------------------------------------------------------- protobuf encoding


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_len(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def pb_int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def tf_node(name: str, op: str) -> bytes:
    """NodeDef: name=1, op=2."""
    return pb_len(1, name) + pb_len(2, op)


def tf_function(name: str, nodes: list[tuple[str, str]]) -> bytes:
    """FunctionDef: signature(OpDef name=1)=1, node_def=3."""
    return pb_len(1, pb_len(1, name)) + b"".join(pb_len(3, tf_node(n, o)) for n, o in nodes)


def tf_graph(nodes: list[tuple[str, str]], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """GraphDef: node=1, library(FunctionDefLibrary function=1)=2, versions=4."""
    lib = b"".join(pb_len(1, f) for f in functions)
    return (b"".join(pb_len(1, tf_node(n, o)) for n, o in nodes)
            + (pb_len(2, lib) if lib else b"") + pb_len(4, pb_int(1, 1987)))


def saved_model(graph: bytes) -> bytes:
    """SavedModel: saved_model_schema_version=1, meta_graphs(MetaGraphDef graph_def=2)=2."""
    meta = pb_len(1, pb_len(1, "serve")) + pb_len(2, graph)
    return pb_int(1, 1) + pb_len(2, meta)


SAVER = [("save/Const", "Const"), ("save/SaveV2", "SaveV2"), ("save/RestoreV2", "RestoreV2")]
BENIGN_NODES = [("x", "Placeholder"), ("w", "VarHandleOp"), ("mul", "MatMul"),
                ("relu", "Relu"), ("out", "Identity")]


def benign_saved_model() -> bytes:
    traced = tf_function("__inference__traced_save_123", [("SaveV2", "SaveV2"),
                                                           ("Merge", "MergeV2Checkpoints")])
    serving = tf_function("__inference_serving_default_45", [("m", "MatMul"), ("i", "Identity")])
    return saved_model(tf_graph(BENIGN_NODES + SAVER, [traced, serving]))


# ----------------------------------------------------------------- Keras configs


def lambda_bytecode() -> str:
    """base64 of marshal'ed code, the way Keras' func_dump stores a Lambda (never loaded)."""
    return base64.b64encode(marshal.dumps((lambda x: x).__code__)).decode()


def keras_layer(class_name: str, config: dict[str, object], module: str = "keras.layers"
                ) -> dict[str, object]:
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


def keras_model(layers: list[dict[str, object]]) -> dict[str, object]:
    dense = keras_layer("Dense", {"name": "dense", "units": 2, "activation": "relu",
                                  "kernel_initializer": keras_layer(
                                      "GlorotUniform", {"seed": None}, "keras.initializers")})
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "layers": [
                keras_layer("InputLayer", {"batch_shape": [None, 4], "name": "input"}),
                dense, *layers]},
            "compile_config": {"loss": {"module": "keras.losses", "class_name": "function",
                                        "config": "mean_squared_error",
                                        "registered_name": "mean_squared_error"}}}


KERAS_CONFIGS: dict[str, tuple[dict[str, object], str]] = {
    "benign": (keras_model([]), "clean"),
    "lambda-v3": (keras_model([keras_layer("Lambda", {"name": "l", "function": {
        "class_name": "__lambda__", "config": {"code": "<filled>", "defaults": None,
                                               "closure": None}}})]), "malicious"),
    "module-injection": (keras_model([keras_layer("Dense", {"name": "d", "units": 1,
        "activation": {"module": "os", "class_name": "function", "config": "system",
                       "registered_name": "system"}})]), "malicious"),
    "subprocess-class": (keras_model([{"module": "subprocess", "class_name": "Popen",
        "config": {"args": MARKER_CMD.split()}, "registered_name": "Popen"}]), "malicious"),
    "get-file": (keras_model([keras_layer("Dense", {"name": "d", "units": 1, "activation": {
        "module": "keras.utils", "class_name": "function", "config": "get_file",
        "registered_name": "get_file"}})]), "malicious"),
    "enable-unsafe": (keras_model([{"module": "keras.config", "class_name": "function",
        "config": "enable_unsafe_deserialization", "registered_name": None}]), "malicious"),
    "unknown-module": (keras_model([{"module": "my_private_layers", "class_name": "Block",
        "config": {"name": "b"}, "registered_name": "Custom>Block"}]), "suspicious"),
}


def keras_config(name: str) -> dict[str, object]:
    cfg = json.loads(json.dumps(KERAS_CONFIGS[name][0]))
    if name == "lambda-v3":
        cfg["config"]["layers"][-1]["config"]["function"]["config"]["code"] = lambda_bytecode()
    return cfg  # type: ignore[no-any-return]


def keras_v3_zip(path: Path, config: dict[str, object]) -> Path:
    """A .keras v3 archive: config.json, metadata.json, model.weights.h5."""
    import h5py
    import numpy as np

    weights = path.with_suffix(".weights.tmp.h5")
    with h5py.File(weights, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.ones((4, 2), np.float32))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.8.0",
                                                "date_saved": "2025-01-01@00:00:00"}))
        z.writestr("config.json", json.dumps(config))
        z.write(weights, "model.weights.h5")
    weights.unlink()
    return path


def keras2_h5(path: Path, layers: list[dict[str, object]]) -> Path:
    """A legacy Keras 2 .h5 model: model_config / keras_version attributes + weights."""
    import h5py
    import numpy as np

    cfg = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "units": 2,
                                           "activation": "relu"}}, *layers]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        f.create_dataset("model_weights/dense/dense/kernel:0", data=np.ones((4, 2), np.float32))
    return path


def keras2_lambda_layer() -> dict[str, object]:
    return {"class_name": "Lambda", "config": {
        "name": "lambda", "function": [lambda_bytecode(), None, None],
        "function_type": "lambda", "module": "__main__", "output_shape": None,
        "output_shape_type": "raw", "arguments": {}}}


# ----------------------------------------------------------------- everything


def build_all(directory: Path) -> dict[str, tuple[Path, str]]:
    """Write one benign/malicious sample per class; returns name -> (path, verdict)."""
    import gguf
    import numpy as np
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}

    p = directory / "model.safetensors"
    save_file({"w": np.ones((4, 4), np.float32)}, str(p))
    out["safetensors-benign"] = (p, "clean")
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    p = directory / "overlap.safetensors"
    p.write_bytes(struct.pack("<Q", len(hdr)) + hdr + b"\0" * 12)
    out["safetensors-overlap"] = (p, "malicious")

    for name, template in (("benign", "{% for m in messages %}{{ m.content }}{% endfor %}"),
                           ("ssti", "{{ cycler.__init__.__globals__.os.popen('"
                                    + MARKER_CMD + "').read() }}")):
        p = directory / f"{name}.gguf"
        w = gguf.GGUFWriter(str(p), "llama")
        w.add_chat_template(template)
        w.add_tensor("w", np.ones(8, np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out[f"gguf-{name}"] = (p, "clean" if name == "benign" else "malicious")

    for name in KERAS_CONFIGS:
        p = keras_v3_zip(directory / f"keras-{name}.keras", keras_config(name))
        out[f"keras-{name}"] = (p, KERAS_CONFIGS[name][1])
    out["h5-benign"] = (keras2_h5(directory / "benign.h5", []), "clean")
    out["h5-lambda"] = (keras2_h5(directory / "lambda.h5", [keras2_lambda_layer()]), "malicious")

    sm = directory / "savedmodel"
    sm.mkdir(exist_ok=True)
    (sm / "saved_model.pb").write_bytes(benign_saved_model())
    out["tf-benign"] = (sm / "saved_model.pb", "clean")
    evil = directory / "savedmodel-evil"
    evil.mkdir(exist_ok=True)
    (evil / "saved_model.pb").write_bytes(saved_model(tf_graph(
        [*BENIGN_NODES, ("cmd", "Const"), ("f", "WriteFile")],
        [tf_function("__inference_call_9", [("py", "EagerPyFunc")])])))
    out["tf-pyfunc"] = (evil / "saved_model.pb", "malicious")

    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:  # pragma: no cover
        return out
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "w")])
    m = helper.make_model(graph)
    p = directory / "model.onnx"
    onnx.save_model(m, str(p))
    out["onnx-benign"] = (p, "clean")
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "../../../../etc/passwd"
    p = directory / "traversal.onnx"
    p.write_bytes(m.SerializeToString())
    out["onnx-traversal"] = (p, "malicious")
    return out
