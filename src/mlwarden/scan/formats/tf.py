"""TensorFlow SavedModel (``saved_model.pb``), frozen GraphDef and ``keras_metadata.pb``,
walked without TensorFlow.

Paths: SavedModel.meta_graphs(2) -> MetaGraphDef.graph_def(2) -> GraphDef.node(1) ->
NodeDef.op(2); GraphDef.library(2) -> FunctionDefLibrary.function(1) -> FunctionDef
.node_def(3), with the function name in FunctionDef.signature(1) -> OpDef.name(1).

Op policy (docs/formats.md): ops that run Python or write files are malicious; ops that
read files, probe the filesystem or stream debug data out are suspicious; checkpoint ops
(SaveV2, RestoreV2, ...) are normal inside the saver graph (``save/`` nodes, functions
named ``*save*``/``*restore*``) and suspicious anywhere else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import Rule, rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.keras import analyze_keras_config
from mlwarden.scan.formats.protowire import LEN, VARINT, Blob, Field

TF_PYFUNC = rule(
    "tf-pyfunc-op",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "TensorFlow graph calls back into Python",
    "PyFunc, PyFuncStateless and EagerPyFunc run a Python callable of the loading process "
    "(tf.py_function / tf.numpy_function); a shared model has no business doing so.",
)
TF_WRITE = rule(
    "tf-file-write-op",
    Verdict.MALICIOUS,
    Severity.HIGH,
    "TensorFlow graph writes files",
    "WriteFile and the dataset/record writers create or overwrite arbitrary paths when "
    "the model runs.",
)
TF_READ = rule(
    "tf-file-read-op",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "TensorFlow graph reads files or probes the filesystem",
    "ReadFile, MatchingFiles, file readers/datasets and ImmutableConst read host files at "
    "run time (data exfiltration through outputs). Some text models read bundled assets "
    "this way; review the paths.",
)
TF_DEBUG = rule(
    "tf-debug-op",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "TensorFlow graph contains debugger ops",
    "Debug* ops stream tensors to debug_urls (file:// or grpc://); exported models do not "
    "need them.",
)
TF_CHECKPOINT = rule(
    "tf-checkpoint-op",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Checkpoint save/restore op outside the saver graph",
    "SaveV2/RestoreV2/MergeV2Checkpoints belong to the saver functions; elsewhere they "
    "read or write files at paths the graph computes.",
)
TF_SUMMARY = rule(
    "tf-summary",
    Verdict.CLEAN,
    Severity.INFO,
    "TensorFlow graph parsed",
    "Meta graphs, nodes and functions walked; no variable data is read.",
)
DATA_PROTOBUF = rule(
    "protobuf-data",
    Verdict.CLEAN,
    Severity.INFO,
    "Protobuf data that no loader executes",
    "Not ONNX, a SavedModel or a GraphDef (for example a sentencepiece tokenizer.model or "
    "a fingerprint.pb): inert data.",
)

OPS: dict[str, Rule] = {
    **{op: TF_PYFUNC for op in ("PyFunc", "PyFuncStateless", "EagerPyFunc")},
    **{op: TF_WRITE for op in (
        "WriteFile", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "SaveDataset",
        "SaveDatasetV2", "CreateSummaryFileWriter", "WriteAudioSummary", "WriteGraphSummary",
        "WriteHistogramSummary", "WriteImageSummary", "WriteRawProtoSummary",
        "WriteScalarSummary", "WriteSummary",
    )},
    **{op: TF_READ for op in (
        "ReadFile", "MatchingFiles", "MatchingFilesDataset", "ImmutableConst",
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2",
        "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "LMDBReader", "TextLineDataset", "TFRecordDataset",
        "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
        "LoadAndRemapMatrix", "LoadDataset", "ExperimentalLMDBDataset", "LMDBDataset",
    )},
    **{op: TF_DEBUG for op in (
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "DebugNumericSummaryV2", "CopyHost", "Copy",
    )},
    **{op: TF_CHECKPOINT for op in (
        "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
        "MergeV2Checkpoints",
    )},
}


@dataclass
class _State:
    blob: Blob
    ctx: ScanContext
    nodes: int = 0
    functions: int = 0
    meta_graphs: int = 0
    reported: set[tuple[str, str]] = field(default_factory=set)


def classify(blob: Blob, top: list[Field]) -> str | None:
    """"tf-savedmodel", "tf-graphdef", "keras-metadata" or None."""
    numbers = {(f.number, f.wire) for f in top}
    if (2, LEN) in numbers and all(f.number in (1, 2) for f in top) and (
        (1, VARINT) in numbers or _has(blob, top, 2, {1, 2, 3, 4, 5, 6, 7})
    ) and _meta_graph_has_graph(blob, top):
        return "tf-savedmodel"
    if (1, LEN) in numbers and all(f.number in (1, 2, 3, 4) for f in top):
        first = next(f for f in top if f.number == 1 and f.wire == LEN)
        inner = _first_fields(blob, first, 4)
        if any(g.number == 2 and g.wire == LEN for g in inner) and any(
            g.number == 1 and g.wire == LEN for g in inner
        ):
            op = next(g for g in inner if g.number == 2 and g.wire == LEN)
            text = blob.raw(op, 128)
            if text and text.isascii() and text[:1].isalpha() and all(
                32 < c < 127 for c in text
            ):
                return "tf-graphdef"
        if any(g.wire == LEN and blob.raw(g, 16).startswith(b"_tf_keras") for g in inner):
            return "keras-metadata"
    return None


def _first_fields(blob: Blob, f: Field, n: int) -> list[Field]:
    out: list[Field] = []
    for g in blob.fields(f.offset, f.end):
        out.append(g)
        if len(out) >= n:
            break
    return out


def _has(blob: Blob, top: list[Field], number: int, allowed: set[int]) -> bool:
    f = next((f for f in top if f.number == number and f.wire == LEN), None)
    return f is not None and all(g.number in allowed for g in _first_fields(blob, f, 8))


def _meta_graph_has_graph(blob: Blob, top: list[Field]) -> bool:
    f = next((f for f in top if f.number == 2 and f.wire == LEN), None)
    if f is None:
        return False
    return any(g.number == 2 and g.wire == LEN for g in blob.fields(f.offset, f.end))


def analyze_savedmodel(blob: Blob, top: list[Field], ctx: ScanContext) -> None:
    st = _State(blob, ctx)
    for f in top:
        if f.number == 2 and f.wire == LEN:
            st.meta_graphs += 1
            for g in blob.fields(f.offset, f.end):
                if g.number == 2 and g.wire == LEN:
                    _graph_def(st, g.offset, g.end)
    _summary(st, f"SavedModel: {st.meta_graphs} meta graph(s)")


def analyze_graphdef(blob: Blob, ctx: ScanContext) -> None:
    st = _State(blob, ctx)
    _graph_def(st, 0, blob.size)
    _summary(st, "GraphDef")


def _summary(st: _State, what: str) -> None:
    st.ctx.report(TF_SUMMARY, f"{what}, {st.nodes} nodes, {st.functions} functions")


def _graph_def(st: _State, start: int, end: int) -> None:
    for f in st.blob.fields(start, end):
        if f.wire != LEN:
            continue
        if f.number == 1:
            _node(st, f, None)
        elif f.number == 2:
            for g in st.blob.fields(f.offset, f.end):
                if g.number == 1 and g.wire == LEN:
                    _function(st, g)


def _function(st: _State, f: Field) -> None:
    st.functions += 1
    name = ""
    nodes: list[Field] = []
    for g in st.blob.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == 1:
            for h in st.blob.fields(g.offset, g.end):
                if h.number == 1 and h.wire == LEN:
                    name = st.blob.string(h, 512)
        elif g.number == 3:
            nodes.append(g)
    for n in nodes:
        _node(st, n, name)


def _node(st: _State, f: Field, function: str | None) -> None:
    st.nodes += 1
    name = op = ""
    for g in st.blob.fields(f.offset, f.end):
        if g.wire == LEN and g.number == 1:
            name = st.blob.string(g, 512)
        elif g.wire == LEN and g.number == 2:
            op = st.blob.string(g, 256)
    r = OPS.get(op)
    if r is None:
        return
    if r is TF_CHECKPOINT and _in_saver(name, function):
        return
    where = f"function {function}, " if function else ""
    key = (op, function or "")
    if key in st.reported:
        return  # one finding per op per function keeps reports readable
    st.reported.add(key)
    inside = f" in function {function!r}" if function else ""
    st.ctx.report(r, f"op {op} (node {name!r}{inside})",
                  Location(offset=f.offset, detail=f"{where}node {name!r}"))


def _in_saver(node: str, function: str | None) -> bool:
    if node.startswith(("save/", "save_", "saver")) or "/save/" in node:
        return True
    low = (function or "").lower()
    return "save" in low or "restore" in low


def analyze_keras_metadata(blob: Blob, top: list[Field], ctx: ScanContext) -> None:
    """keras_metadata.pb: each SavedObject carries its layer config as JSON."""
    count = 0
    for f in top:
        if f.number != 1 or f.wire != LEN:
            continue
        for g in blob.fields(f.offset, f.end):
            if g.wire == LEN and g.value > 1 and blob.raw(g, 1) == b"{":
                if g.value > ctx.limits.max_text_bytes:
                    ctx.limit("keras_metadata entry too large to analyse",
                              Location(offset=g.offset))
                    continue
                try:
                    obj = json.loads(blob.raw(g, g.value))
                except (ValueError, RecursionError):
                    continue
                count += 1
                analyze_keras_config(obj, ctx, Location(offset=g.offset, detail="keras metadata"),
                                     report_ok=False)
    ctx.report(TF_SUMMARY, f"keras_metadata.pb: {count} layer record(s)")
