"""ONNX ModelProto analysis over the bounded wire walker (tensor payloads are skipped).

Checks: external-data locations (absolute, ``..``, or resolving outside the model
directory: CVE-2022-25882, CVE-2024-27318), custom operator domains that need a native
library, and declared tensor sizes that are absurd or disagree with the embedded bytes.
Subgraphs (If/Loop/Scan attributes), training graphs and model-local functions are walked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats.protowire import LEN, VARINT, Blob, Field, signed64

MAX_GRAPH_DEPTH = 32
MAX_DIMS = 64
OVERSIZED_BYTES = 1 << 40  # 1 TiB: no real initializer declares more

# Operator domains that ONNX itself or the mainstream runtimes implement.
STANDARD_DOMAINS = frozenset({
    "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
    "ai.onnx.preview", "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
    "com.microsoft.dml", "com.ms.internal.nhwc", "org.pytorch.aten", "pkg.onnxscript.torch_lib",
    "pkg.onnxscript.torch_lib.common",
})
# TensorProto.DataType -> bits per element (STRING has no fixed size).
DTYPE_BITS: dict[int, int] = {
    1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64,
    14: 64, 15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8,
    25: 2, 26: 2,
}

EXTERNAL_TRAVERSAL = rule(
    "onnx-external-data-traversal",
    Verdict.MALICIOUS,
    Severity.CRITICAL,
    "ONNX external data points outside the model directory",
    "A tensor's external_data location is absolute, contains '..', or resolves (through "
    "symlinks) outside the model's directory. Loading reads arbitrary host files into the "
    "model (CVE-2022-25882, CVE-2024-27318).",
)
CUSTOM_DOMAIN = rule(
    "onnx-custom-domain",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "ONNX graph uses a custom operator domain",
    "Operators outside the standard domains need a custom-op library (native code) "
    "registered with the runtime. Operators defined as model-local functions are not "
    "reported.",
)
OVERSIZED = rule(
    "onnx-oversized-tensor",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "ONNX tensor declares an implausible size",
    "Dimensions whose product exceeds 1 TiB, negative dimensions, embedded data larger "
    "than the file, or raw_data that disagrees with the declared shape target readers "
    "that trust the header (allocation bombs, out-of-bounds reads).",
)
MALFORMED = rule(
    "onnx-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Malformed ONNX model",
    "The protobuf does not follow the ONNX schema where the analysis needs it.",
)
SUMMARY = rule(
    "onnx-summary",
    Verdict.CLEAN,
    Severity.INFO,
    "ONNX model parsed",
    "IR version, producer, node and initializer counts; tensor data is never read.",
)


@dataclass
class _State:
    blob: Blob
    ctx: ScanContext
    model_dir: Path | None
    file_size: int
    nodes: int = 0
    initializers: int = 0
    external: set[str] = field(default_factory=set)
    custom_ops: dict[tuple[str, str], int] = field(default_factory=dict)  # -> offset
    local_functions: set[tuple[str, str]] = field(default_factory=set)
    opset_domains: dict[str, int] = field(default_factory=dict)


# First fields of the messages a ModelProto holds, with their wire types: a TensorProto or
# SequenceProto (whose field numbers overlap ModelProto's) does not parse this way.
_GRAPH_FIELDS = {1: LEN, 2: LEN, 5: LEN, 10: LEN, 11: LEN, 12: LEN, 13: LEN, 14: LEN,
                 15: LEN, 16: LEN}
_OPSET_FIELDS = {1: LEN, 2: VARINT}


def looks_like_onnx(top: list[Field], blob: Blob | None = None) -> bool:
    numbers = {(f.number, f.wire) for f in top}
    allowed = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25}
    if not ((7, LEN) in numbers and ((1, VARINT) in numbers or (8, LEN) in numbers)
            and all(f.number in allowed for f in top)):
        return False
    if blob is None:
        return True
    graph = next(f for f in top if f.number == 7 and f.wire == LEN)
    opsets = [f for f in top if f.number == 8 and f.wire == LEN]
    return _parses_as(blob, graph, _GRAPH_FIELDS) and all(
        _parses_as(blob, f, _OPSET_FIELDS) for f in opsets[:4])


def _parses_as(blob: Blob, f: Field, fields: dict[int, int], n: int = 8) -> bool:
    """The first ``n`` fields inside ``f`` have the numbers and wire types of a message."""
    from mlwarden.scan.formats.protowire import WireError

    try:
        for i, g in enumerate(blob.fields(f.offset, f.end)):
            if fields.get(g.number) != g.wire:
                return False
            if i + 1 >= n:
                break
    except WireError:
        return False
    return True


def analyze_onnx(blob: Blob, top: list[Field], ctx: ScanContext, model_dir: Path | None) -> None:
    st = _State(blob, ctx, model_dir, blob.size)
    ir_version: int | None = None
    producer = ""
    for f in top:
        if f.number == 1 and f.wire == VARINT:
            ir_version = f.value
        elif f.number == 2 and f.wire == LEN:
            producer = blob.string(f, 200)
        elif f.number == 7 and f.wire == LEN:
            _graph(st, f, "graph", 0)
        elif f.number == 8 and f.wire == LEN:
            _opset(st, f)
        elif f.number == 20 and f.wire == LEN:
            for g in blob.fields(f.offset, f.end):  # TrainingInfoProto
                if g.number in (1, 2) and g.wire == LEN:
                    _graph(st, g, "training graph", 1)
        elif f.number == 25 and f.wire == LEN:
            _function(st, f)
    for (domain, op), offset in sorted(st.custom_ops.items()):
        if (domain, op) in st.local_functions:
            continue
        ctx.report(CUSTOM_DOMAIN, f"operator {op!r} from custom domain {domain!r} needs a "
                   "native custom-op library", Location(offset=offset, detail=f"op {op}"))
    used = {d for d, _ in st.custom_ops}
    for domain, offset in st.opset_domains.items():
        if domain not in STANDARD_DOMAINS and domain not in used \
                and domain not in {d for d, _ in st.local_functions}:
            ctx.report(CUSTOM_DOMAIN, f"opset_import declares custom domain {domain!r}",
                       Location(offset=offset, detail="opset_import"))
    ext = f", {len(st.external)} external data file(s)" if st.external else ""
    ctx.report(SUMMARY, f"ONNX IR v{ir_version}, producer {producer or '?'!r}: {st.nodes} "
               f"nodes, {st.initializers} initializers{ext}")


def _opset(st: _State, f: Field) -> None:
    for g in st.blob.fields(f.offset, f.end):
        if g.number == 1 and g.wire == LEN:
            st.opset_domains.setdefault(st.blob.string(g, 512), f.offset)


def _graph(st: _State, f: Field, where: str, depth: int) -> None:
    if depth > MAX_GRAPH_DEPTH:
        st.ctx.limit(f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}; not analysed",
                     Location(offset=f.offset, detail=where))
        return
    for g in st.blob.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == 1:
            _node(st, g, where, depth)
        elif g.number == 5:
            st.initializers += 1
            _tensor(st, g, where)
        elif g.number == 15:
            st.initializers += 1
            for h in st.blob.fields(g.offset, g.end):  # SparseTensorProto values/indices
                if h.number in (1, 2) and h.wire == LEN:
                    _tensor(st, h, where)


def _node(st: _State, f: Field, where: str, depth: int) -> None:
    st.nodes += 1
    op, domain = "", ""
    attrs: list[Field] = []
    for g in st.blob.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == 4:
            op = st.blob.string(g, 512)
        elif g.number == 7:
            domain = st.blob.string(g, 512)
        elif g.number == 5:
            attrs.append(g)
    if domain not in STANDARD_DOMAINS:
        st.custom_ops.setdefault((domain, op), f.offset)
    for a in attrs:
        for h in st.blob.fields(a.offset, a.end):
            if h.wire != LEN:
                continue
            if h.number in (5, 10):  # t, tensors
                _tensor(st, h, f"{where}, node {op}")
            elif h.number in (6, 11):  # g, graphs (If/Loop/Scan bodies)
                _graph(st, h, f"{where} > {op} subgraph", depth + 1)
            elif h.number in (22, 23):  # sparse_tensor(s)
                for k in st.blob.fields(h.offset, h.end):
                    if k.number in (1, 2) and k.wire == LEN:
                        _tensor(st, k, f"{where}, node {op}")


def _function(st: _State, f: Field) -> None:
    name, domain = "", ""
    nodes: list[Field] = []
    for g in st.blob.fields(f.offset, f.end):
        if g.wire != LEN:
            continue
        if g.number == 1:
            name = st.blob.string(g, 512)
        elif g.number == 10:
            domain = st.blob.string(g, 512)
        elif g.number == 7:
            nodes.append(g)
        elif g.number == 9:
            _opset(st, g)
    st.local_functions.add((domain, name))
    for n in nodes:
        _node(st, n, f"function {domain}.{name}", 1)


def _tensor(st: _State, f: Field, where: str) -> None:
    dims: list[int] = []
    dtype = 0
    name = ""
    raw_len: int | None = None
    external: dict[str, str] = {}
    location_kind = 0
    for g in st.blob.fields(f.offset, f.end):
        if g.number == 1:
            if g.wire == VARINT:
                dims.append(signed64(g.value))
            elif g.wire == LEN:
                dims.extend(signed64(v) for v in st.blob.packed_varints(g, MAX_DIMS + 1))
        elif g.number == 2 and g.wire == VARINT:
            dtype = g.value
        elif g.number == 8 and g.wire == LEN:
            name = st.blob.string(g, 256)
        elif g.number == 9 and g.wire == LEN:
            raw_len = g.value
        elif g.number == 13 and g.wire == LEN:
            key = value = ""
            for h in st.blob.fields(g.offset, g.end):
                if h.number == 1 and h.wire == LEN:
                    key = st.blob.string(h, 256)
                elif h.number == 2 and h.wire == LEN:
                    value = st.blob.string(h, 4096)
            external[key] = value
        elif g.number == 14 and g.wire == VARINT:
            location_kind = g.value
    loc = Location(offset=f.offset, detail=f"{where}, tensor {name!r}")
    if len(dims) > MAX_DIMS:
        st.ctx.report(OVERSIZED, f"tensor {name!r} declares more than {MAX_DIMS} dimensions",
                      loc)
        return
    if any(d < 0 for d in dims):
        st.ctx.report(OVERSIZED, f"tensor {name!r} has a negative dimension {dims[:8]}", loc)
        return
    declared: int | None = None
    if dtype in DTYPE_BITS:
        elements = 1
        for d in dims:
            elements *= d
        declared = (elements * DTYPE_BITS[dtype] + 7) // 8
        if declared > OVERSIZED_BYTES:
            st.ctx.report(OVERSIZED, f"tensor {name!r} declares {declared} bytes "
                          f"(dims {dims[:8]})", loc)
            return
    if location_kind == 1 or external:
        _external(st, name, external, loc)
        return
    if declared is None:
        return
    if raw_len is not None and raw_len != declared:
        st.ctx.report(OVERSIZED, f"tensor {name!r}: dims {dims[:8]} declare {declared} bytes "
                      f"but raw_data holds {raw_len}", loc)
    elif raw_len is None and declared > st.file_size:
        st.ctx.report(OVERSIZED, f"tensor {name!r} declares {declared} bytes of embedded data, "
                      f"more than the {st.file_size}-byte file", loc)


_DRIVE = re.compile(r"^[A-Za-z]:")


def _external(st: _State, name: str, external: dict[str, str], loc: Location) -> None:
    location = external.get("location")
    if location is None or location == "":
        st.ctx.report(MALFORMED, f"tensor {name!r} is stored externally but names no "
                      "location", loc)
        return
    norm = location.replace("\\", "/")
    parts = PurePosixPath(norm).parts
    reason = None
    if "\x00" in location:
        reason = "contains a NUL byte"
    elif norm.startswith("/") or _DRIVE.match(norm) or norm.startswith("~"):
        reason = "is absolute"
    elif ".." in parts:
        reason = "contains '..'"
    elif st.model_dir is not None:
        base = st.model_dir.resolve()
        target = Path(os.path.normpath(base / norm))
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):
            resolved = target
        if not resolved.is_relative_to(base):
            reason = f"resolves outside the model directory (to {str(resolved)[:200]!r})"
    if reason:
        st.ctx.report(EXTERNAL_TRAVERSAL, f"tensor {name!r} external data location "
                      f"{location[:300]!r} {reason}", loc)
    else:
        st.external.add(norm)
