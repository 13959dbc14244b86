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
from mlwarden.scan.formats.protowire import LEN, VARINT, Blob, Field, WireError

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
TF_NETWORK = rule(
    "tf-network-op",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "TensorFlow graph sends data off the host",
    "RPC ops (Rpc, TryRpc, RpcClient, RpcCall), tf.data service ops (DataServiceDataset*, "
    "RegisterDataset*, DistributedSave), and debugger ops whose debug_urls name a grpc:// "
    "or http(s):// endpoint connect to another machine when the model runs. An exported "
    "model has no reason to.",
)
TF_COLLECTIVE = rule(
    "tf-collective-op",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "TensorFlow graph exchanges tensors with other workers",
    "Collective and cross-device send/receive ops move tensors to other tasks of a "
    "distributed job; in a model loaded on one host they are unexpected.",
)
TF_EXFILTRATION = rule(
    "tf-exfiltration",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "TensorFlow graph reads host files and sends or writes data",
    "One graph holds ops that read files of the host (ReadFile, MatchingFiles, dataset "
    "readers such as FixedLengthRecordDatasetV2) and ops that send or write data (network "
    "ops, debugger ops with debug_urls, WriteFile, dataset writers, Save to a path the "
    "graph computes): running it copies host files somewhere else.",
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
        "TextLineDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
        "SqlDataset", "ExperimentalSqlDataset", "ExperimentalLoadDataset",
        "ParseExampleDataset", "IdentityReader", "IdentityReaderV2",
        "ReaderReadV2", "ReaderRead", "ReaderReadUpToV2", "ReaderReadUpTo",
    )},
    **{op: TF_WRITE for op in (
        "CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2",
        "SnapshotDatasetReader", "CreateSummaryDbWriter", "ImportEvent",
    )},
    **{op: TF_NETWORK for op in (
        "Rpc", "TryRpc", "RpcClient", "RpcServer", "RpcCall", "RpcServerStart",
        "RpcServerRegister", "RpcCheckStatus", "RpcGetValue", "DataServiceDataset",
        "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
        "RegisterDataset", "RegisterDatasetV2", "DistributedSave",
    )},
    **{op: TF_COLLECTIVE for op in (
        "_Send", "_Recv", "_HostSend", "_HostRecv", "CollectiveReduce", "CollectiveReduceV2",
        "CollectiveReduceV3", "CollectiveGather", "CollectiveGatherV2", "CollectiveBcastSend",
        "CollectiveBcastSendV2", "CollectiveBcastRecv", "CollectiveBcastRecvV2",
        "CollectiveAllToAllV2", "CollectiveAllToAllV3", "CollectiveReduceScatterV2",
        "CollectiveInitializeCommunicator", "NcclAllReduce", "NcclBroadcast", "NcclReduce",
        "Send", "Recv",
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
class _Node:
    name: str
    op: str
    inputs: list[str]
    offset: int
    function: str | None
    urls: list[str] = field(default_factory=list)  # debug_urls / PrintV2 output_stream


@dataclass
class _State:
    blob: Blob
    ctx: ScanContext
    nodes: int = 0
    functions: int = 0
    meta_graphs: int = 0
    reported: set[tuple[str, str]] = field(default_factory=set)
    # Nodes that matter for the read-and-send combination, with their scope's nodes.
    scopes: list[dict[str, _Node]] = field(default_factory=list)
    reads: list[_Node] = field(default_factory=list)
    sends: list[tuple[_Node, str]] = field(default_factory=list)  # (node, why)


MAX_TRACKED = 200_000  # nodes kept for the path data-flow check
_PLACEHOLDERS = frozenset({"Placeholder", "PlaceholderV2", "PlaceholderWithDefault", "_Arg"})
_SAVE_OPS = frozenset({"Save", "SaveV2", "SaveSlices", "MergeV2Checkpoints"})
_RESTORE_OPS = frozenset({"Restore", "RestoreV2", "RestoreSlice"})
_NETWORK_SCHEMES = ("grpc://", "http://", "https://", "gs://", "s3://", "hdfs://", "ram://")


def classify(blob: Blob, top: list[Field]) -> str | None:
    """"tf-savedmodel", "tf-graphdef", "keras-metadata" or None (probing nested fields of
    another message, such as an ONNX SequenceProto, may meet bytes that are no message)."""
    try:
        return _classify(blob, top)
    except WireError:
        return None


def _classify(blob: Blob, top: list[Field]) -> str | None:
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
    _exfiltration(st)
    st.ctx.report(TF_SUMMARY, f"{what}, {st.nodes} nodes, {st.functions} functions")


def _exfiltration(st: _State) -> None:
    """Host-file readers and senders/writers in one graph: malicious together."""
    if not st.reads or not st.sends:
        return
    r = st.reads[0]
    w, why = st.sends[0]
    more = len(st.reads) + len(st.sends) - 2
    st.ctx.report(TF_EXFILTRATION, f"{r.op} (node {r.name!r}) reads host files and {w.op} "
                  f"(node {w.name!r}) {why}" + (f"; {more} more such op(s)" if more else ""),
                  Location(offset=w.offset, detail=f"node {w.name!r}"))


def _graph_def(st: _State, start: int, end: int) -> None:
    scope: dict[str, _Node] = {}
    st.scopes.append(scope)
    for f in st.blob.fields(start, end):
        if f.wire != LEN:
            continue
        if f.number == 1:
            _node(st, f, None, scope)
        elif f.number == 2:
            for g in st.blob.fields(f.offset, f.end):
                if g.number == 1 and g.wire == LEN:
                    _function(st, g)
    _judge_paths(st, scope)


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
    scope: dict[str, _Node] = {}
    for n in nodes:
        _node(st, n, name, scope)
    _judge_paths(st, scope)


def _node(st: _State, f: Field, function: str | None, scope: dict[str, _Node]) -> None:
    st.nodes += 1
    name = op = ""
    inputs: list[str] = []
    attrs: list[Field] = []
    for g in st.blob.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == 1:
            name = st.blob.string(g, 512)
        elif g.number == 2:
            op = st.blob.string(g, 256)
        elif g.number == 3 and len(inputs) < 64:
            inputs.append(st.blob.string(g, 512))
        elif g.number == 5:
            attrs.append(g)
    node = _Node(name, op, inputs, f.offset, function)
    if len(scope) < MAX_TRACKED:
        scope[name] = node
    if op.startswith("Debug") or op == "PrintV2":
        node.urls = _string_attrs(st, attrs, ("debug_urls", "output_stream"))
    r = OPS.get(op)
    if r is TF_DEBUG or op == "PrintV2":
        remote = [u for u in node.urls if u.lower().startswith(_NETWORK_SCHEMES)]
        files = [u for u in node.urls if u.lower().startswith("file://")]
        if remote:
            r = TF_NETWORK
            st.sends.append((node, f"sends tensors to {remote[0][:200]!r}"))
        elif files:
            r = TF_WRITE
            st.sends.append((node, f"writes tensors to {files[0][:200]!r}"))
    if r is TF_READ or (op in _RESTORE_OPS and not _in_saver(name, function)):
        st.reads.append(node)
    elif r in (TF_NETWORK, TF_WRITE) and r is OPS.get(op):
        st.sends.append((node, "sends data off the host" if r is TF_NETWORK
                         else "writes files"))
    if r is None:
        return
    if r is TF_CHECKPOINT and _in_saver(name, function):
        return
    _report_op(st, r, node)


def _report_op(st: _State, r: Rule, node: _Node) -> None:
    function = node.function
    where = f"function {function}, " if function else ""
    key = (node.op if r is OPS.get(node.op) else f"{node.op}/{r.id}", function or "")
    if key in st.reported:
        return  # one finding per op per function keeps reports readable
    st.reported.add(key)
    inside = f" in function {function!r}" if function else ""
    extra = f" with {node.urls[0][:200]!r}" if node.urls else ""
    st.ctx.report(r, f"op {node.op} (node {node.name!r}{inside}){extra}",
                  Location(offset=node.offset, detail=f"{where}node {node.name!r}"))


def _string_attrs(st: _State, attrs: list[Field], keys: tuple[str, ...]) -> list[str]:
    """Values of string / list(string) attributes named ``keys`` (NodeDef.attr map)."""
    out: list[str] = []
    for a in attrs:
        key, value = "", None
        for g in st.blob.fields(a.offset, a.end):
            if g.number == 1 and g.wire == LEN:
                key = st.blob.string(g, 256)
            elif g.number == 2 and g.wire == LEN:
                value = g
        if key not in keys or value is None:
            continue
        for h in st.blob.fields(value.offset, value.end):
            if h.number == 2 and h.wire == LEN:  # AttrValue.s
                out.append(st.blob.string(h, 4096))
            elif h.number == 1 and h.wire == LEN:  # AttrValue.list -> ListValue.s
                for k in st.blob.fields(h.offset, h.end):
                    if k.number == 2 and k.wire == LEN and len(out) < 32:
                        out.append(st.blob.string(k, 4096))
    return out


def _judge_paths(st: _State, scope: dict[str, _Node]) -> None:
    """Checkpoint writes whose path comes only from constants (no placeholder or function
    argument feeds it): the graph chose where to write."""
    for node in scope.values():
        if node.op in _SAVE_OPS and node.inputs and _constant_path(scope, node.inputs[0]):
            # A TF1 saver's path is a Const fed at save time, so this alone says nothing;
            # next to host-file readers it is how the data leaves.
            st.sends.append((node, "writes a checkpoint to a path the graph computes from "
                             "constants"))


def _constant_path(scope: dict[str, _Node], first: str) -> bool:
    todo, seen = [first], 0
    while todo and seen < 256:
        ref = todo.pop().lstrip("^").split(":", 1)[0]
        seen += 1
        node = scope.get(ref)
        if node is None or node.op in _PLACEHOLDERS:
            return False  # a function argument or a placeholder: the caller's path
        todo.extend(node.inputs)
    return seen < 256


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
