"""ONNX: models built with onnx.helper are clean; traversal, custom domains and oversized
tensors are caught; subgraphs and functions are walked; tensor payloads are never read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from formats.fmt_helpers import rules_of, scan_bytes, scan_file
from mlwarden.report.model import Verdict


def model(nodes: list[onnx.NodeProto], inits: list[TensorProto] = (),  # type: ignore[assignment]
          functions: list[onnx.FunctionProto] = (),  # type: ignore[assignment]
          opsets: list[onnx.OperatorSetIdProto] | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=list(inits))
    return helper.make_model(graph, functions=list(functions),
                             opset_imports=opsets or [helper.make_opsetid("", 17)])


def add_model(n: int = 2) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones(n, np.float32), "w")
    return model([helper.make_node("Add", ["x", "w"], ["y"])], [w])


def save(m: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(m.SerializeToString())
    return path


def test_benign_model_clean(tmp_path: Path) -> None:
    r = scan_file(save(add_model(), tmp_path / "m.onnx"))
    assert r.format == "onnx"
    assert r.verdict is Verdict.CLEAN, r.findings
    assert rules_of(r) == {"onnx-summary"}
    assert "1 nodes, 1 initializers" in r.findings[0].message


def test_external_data_inside_dir_clean(tmp_path: Path) -> None:
    m = add_model(1024)
    onnx.save_model(m, str(tmp_path / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    r = scan_file(tmp_path / "m.onnx")
    assert r.verdict is Verdict.CLEAN, r.findings
    assert "1 external data file" in r.findings[0].message


def external_model(location: str) -> onnx.ModelProto:
    m = add_model()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return m


@pytest.mark.parametrize("location", [
    "/etc/passwd", "../../../etc/passwd", "sub/../../secret", "C:\\Windows\\win.ini",
    "..\\..\\x", "~/.ssh/id_rsa",
])
def test_external_traversal_malicious(tmp_path: Path, location: str) -> None:
    r = scan_file(save(external_model(location), tmp_path / "m.onnx"))
    assert r.verdict is Verdict.MALICIOUS, r.findings
    assert "onnx-external-data-traversal" in rules_of(r)


def test_external_symlink_escape_malicious(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"x" * 8)
    d = tmp_path / "model"
    d.mkdir()
    os.symlink(outside, d / "data")
    r = scan_file(save(external_model("data/secret"), d / "m.onnx"))
    assert r.verdict is Verdict.MALICIOUS
    assert "resolves outside" in next(f.message for f in r.findings
                                      if f.rule == "onnx-external-data-traversal")


def test_custom_domain_suspicious(tmp_path: Path) -> None:
    m = model([helper.make_node("Evil", ["x"], ["y"], domain="com.attacker")],
              opsets=[helper.make_opsetid("", 17), helper.make_opsetid("com.attacker", 1)])
    r = scan_file(save(m, tmp_path / "m.onnx"))
    assert r.verdict is Verdict.SUSPICIOUS
    assert any("com.attacker" in f.message for f in r.findings if f.rule == "onnx-custom-domain")


def test_local_function_domain_clean(tmp_path: Path) -> None:
    fn = helper.make_function("local.fns", "MyAdd", ["a", "b"], ["c"],
                              [helper.make_node("Add", ["a", "b"], ["c"])],
                              [helper.make_opsetid("", 17)])
    w = numpy_helper.from_array(np.ones(2, np.float32), "w")
    m = model([helper.make_node("MyAdd", ["x", "w"], ["y"], domain="local.fns")], [w],
              functions=[fn],
              opsets=[helper.make_opsetid("", 17), helper.make_opsetid("local.fns", 1)])
    r = scan_file(save(m, tmp_path / "m.onnx"))
    assert r.verdict is Verdict.CLEAN, r.findings


def test_subgraph_and_function_walked(tmp_path: Path) -> None:
    """A traversal hidden in an If branch, and a custom op inside a function, are found."""
    evil = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[2])
    evil.data_location = TensorProto.EXTERNAL
    e = evil.external_data.add()
    e.key, e.value = "location", "../../etc/shadow"
    then_g = helper.make_graph([helper.make_node("Constant", [], ["t"], value=evil)], "then",
                               [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else",
                               [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    fn = helper.make_function("local.fns", "F", ["a"], ["b"],
                              [helper.make_node("Bad", ["a"], ["b"], domain="com.native")],
                              [helper.make_opsetid("com.native", 1)])
    m = model([helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
              [cond], functions=[fn])
    r = scan_file(save(m, tmp_path / "m.onnx"))
    assert r.verdict is Verdict.MALICIOUS
    assert {"onnx-external-data-traversal", "onnx-custom-domain"} <= rules_of(r)
    assert any("If subgraph" in str(f.location) for f in r.findings)


def test_oversized_declared_tensor(tmp_path: Path) -> None:
    t = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[1 << 30, 1 << 20])
    r = scan_file(save(model([helper.make_node("Identity", ["x"], ["y"])], [t]),
                       tmp_path / "m.onnx"))
    assert r.verdict is Verdict.SUSPICIOUS
    assert "onnx-oversized-tensor" in rules_of(r)


def test_raw_data_disagrees_with_dims(tmp_path: Path) -> None:
    m = add_model(4)
    m.graph.initializer[0].dims[0] = 4096
    r = scan_file(save(m, tmp_path / "m.onnx"))
    assert r.verdict is Verdict.SUSPICIOUS
    assert "raw_data holds 16" in next(f.message for f in r.findings
                                       if f.rule == "onnx-oversized-tensor")


def test_scan_reads_no_tensor_payload(tmp_path: Path, bytes_read: list[int]) -> None:
    small = save(add_model(4), tmp_path / "s.onnx")
    big = save(add_model(8 << 20), tmp_path / "b.onnx")  # 32 MiB embedded initializer
    assert scan_file(small).verdict is Verdict.CLEAN
    bytes_read[0] = 0
    assert scan_file(big).verdict is Verdict.CLEAN
    assert bytes_read[0] < 256 << 10, bytes_read[0]


def test_truncated_onnx_unscannable(tmp_path: Path) -> None:
    data = add_model(1024).SerializeToString()
    r = scan_bytes(data[: len(data) // 2])
    assert r.verdict is Verdict.UNSCANNABLE, r.findings
    assert r.format == "onnx"


def test_walker_agrees_with_onnx_library(tmp_path: Path) -> None:
    """Counts seen by our walker match onnx's own parse of the same model."""
    m = add_model(8)
    m.graph.node.extend([helper.make_node("Relu", ["y"], ["z"]), helper.make_node("Neg", ["z"],
                                                                                  ["q"])])
    p = save(m, tmp_path / "m.onnx")
    loaded = onnx.load(str(p), load_external_data=False)
    r = scan_file(p)
    assert f"{len(loaded.graph.node)} nodes, {len(loaded.graph.initializer)} initializers" \
        in r.findings[0].message
