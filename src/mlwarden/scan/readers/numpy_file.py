"""NumPy ``.npy`` files: a bounded header dict, then raw data, or a pickle when the dtype
holds Python objects (``numpy.load(allow_pickle=True)`` unpickles it)."""

from __future__ import annotations

import struct

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.source import Source

BAD_HEADER = rule(
    "npy-bad-header", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Malformed .npy header",
    "numpy.load would reject the file, or read it differently than the header says.",
)
OBJECT_ARRAY = rule(
    "npy-object-array", Verdict.CLEAN, Severity.INFO,
    "Object array: the data is a pickle",
    "numpy.load(allow_pickle=True) unpickles it; the pickle was analysed.",
)

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20  # numpy itself refuses headers over 10 KiB unless told otherwise


def read_npy(source: Source, ctx: ScanContext) -> None:
    ctx.format = "npy"
    head = source.head(12)
    if len(head) < 10 or head[:6] != _MAGIC:
        ctx.report(BAD_HEADER, "truncated .npy preamble")
        return
    major = head[6]
    if major == 1:
        (hlen,), start = struct.unpack_from("<H", head, 8), 10
    elif major in (2, 3) and len(head) >= 12:
        (hlen,), start = struct.unpack_from("<I", head, 8), 12
    else:
        ctx.report(BAD_HEADER, f"unsupported .npy version {major}.{head[7]}")
        return
    if hlen > min(_MAX_HEADER, ctx.limits.max_header_bytes):
        ctx.report(BAD_HEADER, f"header of {hlen} bytes exceeds the bound")
        return
    raw = source.head(start + hlen)[start:]
    if len(raw) < hlen:
        ctx.report(BAD_HEADER, "header runs past the end of the file")
        return
    header = _parse_header(raw, major)
    if header is None:
        ctx.report(BAD_HEADER, "header is not a dict literal with descr, fortran_order, shape")
        return
    if not _has_object(header["descr"]):
        ctx.report(NOT_ANALYSED, f"numeric array {header['descr']!r} of shape "
                                 f"{header['shape']!r}: raw data, never unpickled")
        return
    data = source.read_all(ctx.limits.max_pickle_bytes)
    ctx.report(OBJECT_ARRAY, "object dtype: the array data is a pickle, analysed below",
               Location(offset=start + hlen))
    # numpy.load calls pickle.load once: anything after the first STOP is never read.
    scan_pickle(data, ctx, start=start + hlen, stacked=False)


def _parse_header(raw: bytes, major: int) -> dict[str, object] | None:
    import ast

    try:
        text = raw.decode("utf-8" if major >= 3 else "latin-1")
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
        return None
    shape = value["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    return value


def _has_object(descr: object, depth: int = 0) -> bool:
    """True when a dtype descriptor (str or structured list) contains an object field."""
    if depth > 32:
        return True  # absurd nesting: treat as pickled rather than trust it
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list):  # structured: [(name, dtype[, shape]), ...]
        return any(_has_object(d, depth + 1) for d in descr)
    if isinstance(descr, tuple) and len(descr) >= 2:
        return _has_object(descr[1], depth + 1)
    return False
