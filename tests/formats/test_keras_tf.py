"""Keras (.keras v3 config, legacy .h5 model_config), TF SavedModel / GraphDef ops, HDF5."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from corpus import formats as corpus
from formats.fmt_helpers import new_ctx, rules_of, scan_bytes, scan_file
from mlwarden.report.model import Location, Verdict
from mlwarden.scan.formats.keras import analyze_keras_archive_config, analyze_keras_config


@pytest.mark.parametrize("name", corpus.KERAS_CONFIGS)
def test_keras_v3_configs(name: str) -> None:
    ctx = new_ctx()
    analyze_keras_archive_config(json.dumps(corpus.keras_config(name)).encode(), ctx,
                                 "config.json")
    assert ctx.verdict.value == corpus.KERAS_CONFIGS[name][1], ctx.findings
    assert all(f.location is not None and f.location.member == "config.json"
               for f in ctx.findings)


@pytest.mark.parametrize(("config", "rule"), [
    ({"class_name": "TFOpLambda", "config": {"name": "t", "function": "io.write_file"}},
     "keras-dangerous-tf-op"),
    ({"class_name": "Lambda", "config": {"name": "l", "function": "relu",
                                         "function_type": "function", "module": "evil_mod"}},
     "keras-unknown-module"),
    ({"module": "builtins", "class_name": "function", "config": "exec"},
     "keras-dangerous-module"),
    ({"class_name": "Dense", "config": {"name": "d", "safe_mode": False}},
     "keras-unsafe-setting"),
])
def test_keras_other_shapes(config: dict[str, object], rule: str) -> None:
    ctx = new_ctx()
    analyze_keras_config(config, ctx, Location())
    assert rule in rules_of(ctx)


def test_keras_benign_tf_ops_and_builtins_clean() -> None:
    ctx = new_ctx()
    analyze_keras_config({"class_name": "Functional", "config": {"layers": [
        {"class_name": "TFOpLambda", "config": {"name": "a", "function": "math.add"}},
        {"module": "builtins", "class_name": "tuple", "config": {}},
        {"class_name": "__tuple__", "config": {"value": [1, 2]}},
    ]}}, ctx, Location())
    assert ctx.verdict is Verdict.CLEAN, ctx.findings


def test_keras_bad_json_unscannable() -> None:
    ctx = new_ctx()
    analyze_keras_archive_config(b"{not json", ctx, "config.json")
    assert ctx.verdict is Verdict.UNSCANNABLE


@pytest.mark.parametrize(("name", "verdict"), [("benign", "clean"), ("lambda-v3", "malicious"),
                                               ("module-injection", "malicious")])
def test_keras_zip_end_to_end(tmp_path: Path, name: str, verdict: str) -> None:
    """Through the engine: the zip reader hands config.json to our analyser."""
    p = corpus.keras_v3_zip(tmp_path / "m.keras", corpus.keras_config(name))
    r = scan_file(p)
    if r.format != "keras":
        pytest.skip(f"zip reader does not recognise .keras archives yet (format {r.format})")
    assert r.verdict.value == verdict, r.findings


def test_h5_benign_clean(tmp_path: Path) -> None:
    r = scan_file(corpus.keras2_h5(tmp_path / "m.h5", []))
    assert r.format == "keras-h5"
    assert r.verdict is Verdict.CLEAN, r.findings


def test_h5_lambda_malicious(tmp_path: Path) -> None:
    """CVE-2025-9905: .h5 Lambda layers run even with safe_mode; they must be flagged."""
    r = scan_file(corpus.keras2_h5(tmp_path / "m.h5", [corpus.keras2_lambda_layer()]))
    assert r.verdict is Verdict.MALICIOUS
    assert "keras-lambda-bytecode" in rules_of(r)
    assert "model_config attribute" in str(r.findings[0].location)


def test_h5_plain_data_and_weights_clean(tmp_path: Path) -> None:
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(4)
    r = scan_file(p)
    assert r.verdict is Verdict.CLEAN and rules_of(r) == {"hdf5-data"}
    r = scan_bytes(p.read_bytes(), "mem.h5")  # through a file object, as for archive members
    assert r.verdict is Verdict.CLEAN and rules_of(r) == {"hdf5-data"}


def test_h5_external_link_suspicious_not_followed(tmp_path: Path) -> None:
    p = tmp_path / "l.h5"
    with h5py.File(p, "w") as f:
        f["ext"] = h5py.ExternalLink("/etc/passwd", "/x")
    r = scan_file(p)
    assert r.verdict is Verdict.SUSPICIOUS
    assert rules_of(r) == {"hdf5-external-link", "hdf5-data"}


def test_h5_truncated_unscannable(tmp_path: Path) -> None:
    p = corpus.keras2_h5(tmp_path / "m.h5", [])
    data = p.read_bytes()
    r = scan_bytes(data[: len(data) // 3], "cut.h5")
    assert r.verdict is Verdict.UNSCANNABLE


# ----------------------------------------------------------------- TensorFlow


def test_savedmodel_benign_clean() -> None:
    r = scan_bytes(corpus.benign_saved_model(), "saved_model.pb")
    assert r.format == "tf-savedmodel"
    assert r.verdict is Verdict.CLEAN, r.findings
    assert "12 nodes, 2 functions" in r.findings[0].message  # 8 graph + 4 function nodes


@pytest.mark.parametrize(("op", "rule", "verdict"), [
    ("PyFunc", "tf-pyfunc-op", Verdict.MALICIOUS),
    ("EagerPyFunc", "tf-pyfunc-op", Verdict.MALICIOUS),
    ("PyFuncStateless", "tf-pyfunc-op", Verdict.MALICIOUS),
    ("WriteFile", "tf-file-write-op", Verdict.MALICIOUS),
    ("ReadFile", "tf-file-read-op", Verdict.SUSPICIOUS),
    ("MatchingFiles", "tf-file-read-op", Verdict.SUSPICIOUS),
    ("ImmutableConst", "tf-file-read-op", Verdict.SUSPICIOUS),
    ("DebugIdentityV2", "tf-debug-op", Verdict.SUSPICIOUS),
    ("SaveV2", "tf-checkpoint-op", Verdict.SUSPICIOUS),
])
def test_savedmodel_dangerous_ops(op: str, rule: str, verdict: Verdict) -> None:
    # In a serving function (not the saver), and in the top-level graph.
    fn = corpus.tf_function("__inference_serving_default_7", [("n", op)])
    r = scan_bytes(corpus.saved_model(corpus.tf_graph(corpus.BENIGN_NODES, [fn])))
    assert r.verdict is verdict, r.findings
    assert rule in rules_of(r)
    assert "__inference_serving_default_7" in str(next(f.location for f in r.findings
                                                        if f.rule == rule))
    r = scan_bytes(corpus.saved_model(corpus.tf_graph([*corpus.BENIGN_NODES, ("evil", op)])))
    assert r.verdict is verdict


def test_frozen_graphdef() -> None:
    r = scan_bytes(corpus.tf_graph([("input", "Placeholder"), ("f", "ReadFile"),
                                    ("o", "Identity")]), "frozen.pb")
    assert r.format == "tf-graphdef"
    assert r.verdict is Verdict.SUSPICIOUS
    assert "tf-file-read-op" in rules_of(r)


def test_keras_metadata_pb_lambda() -> None:
    meta = json.dumps(corpus.keras2_lambda_layer())
    obj = (corpus.pb_int(2, 1) + corpus.pb_len(3, "layer-1") + corpus.pb_len(4, "_tf_keras_layer")
           + corpus.pb_len(5, meta))
    benign = (corpus.pb_int(2, 0) + corpus.pb_len(3, "root")
              + corpus.pb_len(4, "_tf_keras_sequential") + corpus.pb_len(5, '{"name": "s"}'))
    r = scan_bytes(corpus.pb_len(1, benign) + corpus.pb_len(1, obj), "keras_metadata.pb")
    assert r.format == "keras-metadata"
    assert r.verdict is Verdict.MALICIOUS
    assert "keras-lambda-bytecode" in rules_of(r)


def test_sentencepiece_like_protobuf_is_inert() -> None:
    # ModelProto.pieces(1) = SentencePiece{piece=1 (str), score=2 (float), type=3}
    import struct

    piece = corpus.pb_len(1, "▁the") + b"\x15" + struct.pack("<f", -1.5) + corpus.pb_int(3, 1)
    data = b"".join(corpus.pb_len(1, piece) for _ in range(20)) + corpus.pb_len(2, b"\x08\x01")
    r = scan_bytes(data, "tokenizer.model")
    assert r.format == "protobuf"
    assert r.verdict is Verdict.CLEAN
    assert rules_of(r) == {"protobuf-data"}


def test_malformed_savedmodel_unscannable() -> None:
    data = corpus.benign_saved_model()
    r = scan_bytes(data[:-7], "saved_model.pb")
    assert r.verdict is Verdict.UNSCANNABLE


# ----------------------------------------------------------------- corpus + CLI


def test_corpus_through_cli(tmp_path: Path) -> None:
    """Every corpus sample gets its expected verdict from `mlwarden scan --format json`."""
    samples = corpus.build_all(tmp_path / "c")
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "--format", "json",
                           "--fail-on", "suspicious", *[str(p) for p, _ in samples.values()]],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    by_path = {f["path"]: f for f in report["files"]}
    zip_ok = by_path[str(samples["keras-benign"][0])]["format"] == "keras"
    for name, (path, verdict) in samples.items():
        if name.startswith("keras-") and not zip_ok:
            continue
        assert by_path[str(path)]["verdict"] == verdict, (name, by_path[str(path)])
    assert proc.returncode == 1  # malicious samples present
    # Nothing executed: no marker file appeared.
    assert not Path("/tmp/mlwarden-marker").exists()
