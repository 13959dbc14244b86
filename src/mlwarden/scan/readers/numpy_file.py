"""NumPy ``.npy`` files: a bounded header dict, then raw data, or a pickle when the dtype
holds Python objects (``numpy.load(allow_pickle=True)`` unpickles it)."""

from __future__ import annotations

import struct

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.formats.numpy_dtype import DtypeError, DtypeInfo, descr_info
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

DESCR_UNSURE = rule(
    "npy-descr-undecided", Verdict.UNSCANNABLE, Severity.MEDIUM,
    "Cannot tell whether the .npy dtype holds Python objects",
    "The header's descr is accepted by numpy but its object-ness depends on details the "
    "scanner does not model exactly; the data was analysed as a pickle as well.",
)

_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 1 << 20  # numpy itself refuses headers over 10 KiB unless told otherwise


def read_npy(source: Source, ctx: ScanContext) -> None:
    """``numpy.lib.format.read_array``: magic, version, header dict, then raw data or (when
    the dtype holds objects) ``pickle.load`` of the rest of the file."""
    ctx.format = "npy"
    head = source.head(12)
    if len(head) < 10 or head[:6] != _MAGIC:
        ctx.report(BAD_HEADER, "truncated .npy preamble")
        return
    major, minor = head[6], head[7]
    if (major, minor) == (1, 0):
        (hlen,), start = struct.unpack_from("<H", head, 8), 10
    elif (major, minor) in ((2, 0), (3, 0)) and len(head) >= 12:
        (hlen,), start = struct.unpack_from("<I", head, 8), 12
    else:
        ctx.report(BAD_HEADER, f"unsupported .npy version {major}.{minor} (numpy.load "
                   "refuses it)")
        return
    if hlen > min(_MAX_HEADER, ctx.limits.max_header_bytes):
        ctx.report(BAD_HEADER, f"header of {hlen} bytes exceeds the bound")
        return
    raw = source.head(start + hlen)[start:]
    if len(raw) < hlen:
        ctx.report(BAD_HEADER, "header runs past the end of the file")
        return
    header, error = parse_header(raw, major)
    if header is None:
        ctx.report(BAD_HEADER, error or "header is not a dict literal with descr, "
                   "fortran_order, shape")
        return
    descr = header["descr"]
    try:
        info = descr_info(descr)
    except DtypeError as exc:
        ctx.report(BAD_HEADER, f"descr {_short(descr)}: {exc}; numpy.load refuses it")
        return
    except RecursionError:
        info = DtypeInfo(None, None)
    if info.has_object is False:
        ctx.report(NOT_ANALYSED, f"numeric array {_short(descr)} of shape "
                                 f"{_short(header['shape'])}: raw data, never unpickled")
        return
    data = source.read_all(ctx.limits.max_pickle_bytes)
    where = Location(offset=start + hlen)
    if info.has_object is None:
        ctx.report(DESCR_UNSURE, f"descr {_short(descr)}: whether it holds Python objects is "
                   "not decidable statically; the data was analysed as a pickle", where)
    else:
        ctx.report(OBJECT_ARRAY, "object dtype: the array data is a pickle, analysed below",
                   where)
    # numpy.load calls pickle.load once (a plain Unpickler: joblib's array wrappers mean
    # nothing there); anything after the first STOP is never read.
    scan_pickle(data, ctx, start=start + hlen, stacked=False, joblib=False)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def parse_header(raw: bytes, major: int) -> tuple[dict[str, object] | None, str | None]:
    """numpy's ``_read_array_header``: literal_eval, then (versions 1 and 2) once more
    without Python 2 long suffixes (``(2L,)``); exactly three keys; shape a tuple of ints;
    fortran_order a bool."""
    import ast

    try:
        text = raw.decode("utf-8" if major >= 3 else "latin-1")
    except UnicodeDecodeError:
        return None, "header is not UTF-8"
    try:
        value = ast.literal_eval(text)
    except SyntaxError:
        if major >= 3:
            return None, "header does not parse as a Python literal"
        try:
            value = ast.literal_eval(_filter_header(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return None, "header does not parse as a Python literal"
    except (ValueError, MemoryError, RecursionError, TypeError):
        return None, "header is not a Python literal"
    if not isinstance(value, dict) or set(value) != {"descr", "fortran_order", "shape"}:
        return None, "header is not a dict with exactly descr, fortran_order and shape"
    shape = value["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        return None, f"shape {_short(shape)} is not a tuple of ints"
    if not isinstance(value["fortran_order"], bool):
        return None, "fortran_order is not a bool"
    return value, None


def _filter_header(text: str) -> str:
    """numpy.lib.format._filter_header: drop the ``L`` that follows a number token."""
    import io
    import tokenize

    tokens = []
    last_number = False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if last_number and tok.type == tokenize.NAME and tok.string == "L":
                continue
            tokens.append(tok)
            last_number = tok.type == tokenize.NUMBER
    except (tokenize.TokenError, SyntaxError):
        return text
    return tokenize.untokenize(tokens)
