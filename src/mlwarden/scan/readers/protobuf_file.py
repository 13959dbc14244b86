"""Protobuf files: ONNX models, TensorFlow SavedModels / GraphDefs, keras_metadata.pb, or
inert data (sentencepiece tokenizer.model, fingerprint.pb). Which one is decided by the
message structure, never by the file name; the reader sets ``ctx.format`` accordingly."""

from __future__ import annotations

from mlwarden.report.model import Location
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import onnx, tf
from mlwarden.scan.formats.protowire import LEN, VARINT, Blob, Field, WireBudget, WireError
from mlwarden.scan.readers.inert import UNKNOWN_FORMAT
from mlwarden.scan.source import Source

MAX_FIELDS = 5_000_000  # fields visited per file
MAX_TOP_FIELDS = 100_000


def read_protobuf(source: Source, ctx: ScanContext) -> None:
    model_dir = source.fs_path.parent if source.fs_path is not None else None
    with source.open() as fh:
        blob = Blob(fh, source.size, MAX_FIELDS)
        top: list[Field] = []
        try:
            for f in blob.fields(0, source.size):
                top.append(f)
                if len(top) > MAX_TOP_FIELDS:
                    break
        except WireError as exc:
            if _onnx_prefix(top, exc.number):
                ctx.format = "onnx"
                ctx.unscannable(f"truncated or malformed ONNX model: {exc}",
                                Location(offset=exc.offset))
            else:
                ctx.report(UNKNOWN_FORMAT, f"starts like a protobuf message but is not one "
                           f"({exc}); not analysed")
            return
        except WireBudget:
            ctx.limit(f"more than {MAX_FIELDS} protobuf fields; analysis stopped")
            return
        try:
            kind = "onnx" if onnx.looks_like_onnx(top, blob) else tf.classify(blob, top)
            if kind is None:
                ctx.report(tf.DATA_PROTOBUF, "protobuf message of no model format: inert data")
                return
            ctx.format = kind
            if kind == "onnx":
                onnx.analyze_onnx(blob, top, ctx, model_dir)
            elif kind == "tf-savedmodel":
                tf.analyze_savedmodel(blob, top, ctx)
            elif kind == "tf-graphdef":
                tf.analyze_graphdef(blob, ctx)
            else:
                tf.analyze_keras_metadata(blob, top, ctx)
        except WireError as exc:
            ctx.unscannable(f"malformed {ctx.format} protobuf: {exc}",
                            Location(offset=exc.offset))
        except WireBudget:
            ctx.limit(f"more than {MAX_FIELDS} protobuf fields; analysis stopped")


def _onnx_prefix(top: list[Field], failed: int) -> bool:
    """The fields read before an error look like the start of a ModelProto."""
    allowed = (1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25)
    return (len(top) >= 1 and top[0].number == 1 and top[0].wire == VARINT
            and 1 <= top[0].value <= 64
            and all(f.number in allowed for f in top)
            and (failed in (7, 8, 25) or any(f.number == 7 and f.wire == LEN for f in top)))
