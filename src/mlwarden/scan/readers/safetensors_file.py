"""safetensors: strict validation of the JSON header, without reading a single tensor byte.

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
The reference implementation rejects headers over 100 MB, duplicate-free JSON is assumed,
``__metadata__`` must map strings to strings, and the tensors' ``data_offsets`` must tile
the buffer exactly (no gap, no overlap, nothing after the last tensor).

Verdict policy (docs/formats.md):
- malformed header (bad JSON, unknown dtype, inconsistent sizes, gaps, truncation)
  -> ``safetensors-malformed`` (unscannable) with the exact reason;
- shapes no writer produces and that target readers (header length beyond the format's
  bound, overlapping tensors, offsets/sizes beyond 2**48) -> ``safetensors-reader-exploit``
  (malicious);
- duplicate JSON keys (parsers disagree which one wins) -> ``safetensors-duplicate-key``
  (suspicious); bytes after the last tensor (room for a polyglot) -> ``safetensors-trailing-
  bytes`` (suspicious).
"""

from __future__ import annotations

import json
import struct

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.source import Source

# The reference implementation's bound (safetensors MAX_HEADER_SIZE).
FORMAT_MAX_HEADER = 100_000_000
# No real tensor or file comes near this; larger values only serve integer-overflow tricks.
ABSURD_BYTES = 1 << 48

# Bits per element; sub-byte types must fill whole bytes.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8,
    "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32,
    "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

MALFORMED = rule(
    "safetensors-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Malformed safetensors header",
    "The header breaks the format (bad JSON, unknown dtype, sizes that do not match the "
    "offsets, gaps, truncation). The reference loader refuses it; other readers may not. "
    "The message gives the exact reason.",
)
READER_EXPLOIT = rule(
    "safetensors-reader-exploit",
    Verdict.MALICIOUS,
    Severity.HIGH,
    "safetensors header crafted to attack readers",
    "A header length beyond the format's 100 MB bound, overlapping tensor ranges or "
    "offsets/sizes beyond 2**48 bytes never come from a writer; they target readers "
    "with allocation, aliasing or out-of-bounds bugs.",
)
DUPLICATE_KEY = rule(
    "safetensors-duplicate-key",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Duplicate key in the safetensors header",
    "JSON parsers disagree on which duplicate wins, so a scanner and a loader can see "
    "different tensors or metadata.",
)
TRAILING = rule(
    "safetensors-trailing-bytes",
    Verdict.SUSPICIOUS,
    Severity.MEDIUM,
    "Bytes after the last tensor",
    "Data that no tensor covers can hide a second file (a zip or pickle read from the "
    "end). The reference loader refuses such files.",
)


class _Malformed(Exception):
    pass


class _Duplicate(Exception):
    pass


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


def _no_constants(name: str) -> object:
    raise _Malformed(f"non-standard JSON constant {name}")


def read_safetensors(source: Source, ctx: ScanContext) -> None:
    ctx.format = "safetensors"
    size = source.size
    loc = Location(offset=0, detail="header")
    if size < 8:
        ctx.report(MALFORMED, f"file of {size} bytes is shorter than the 8-byte length", loc)
        return
    with source.open() as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > FORMAT_MAX_HEADER:
            ctx.report(READER_EXPLOIT, f"declared header length {n} exceeds the format's "
                       f"{FORMAT_MAX_HEADER}-byte bound (file is {size} bytes)", loc)
            return
        if n > size - 8:
            ctx.report(MALFORMED, f"declared header length {n} runs past the end of the "
                       f"{size}-byte file (truncated)", loc)
            return
        if n > ctx.limits.max_header_bytes:
            ctx.limit(f"header of {n} bytes exceeds the {ctx.limits.max_header_bytes}-byte "
                      "bound", loc)
            return
        raw = fh.read(n)
    if len(raw) != n:
        ctx.report(MALFORMED, "file shrank while reading the header", loc)
        return
    _validate(raw, size - 8 - n, ctx)


def _validate(raw: bytes, buffer_size: int, ctx: ScanContext) -> None:
    hloc = Location(offset=8, detail="header")
    if not raw.startswith(b"{"):
        ctx.report(MALFORMED, "header does not start with '{'", hloc)
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        ctx.report(MALFORMED, f"header is not UTF-8 (byte {exc.start})", hloc)
        return
    try:
        try:
            header = json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constants)
        except _Duplicate as exc:
            ctx.report(DUPLICATE_KEY, f"key {exc.args[0]!r} appears more than once", hloc)
            # Analyse what Python's last-wins parser sees; the duplicate stopped the first
            # parse early, so the rest of the text may still be malformed.
            header = json.loads(text, parse_constant=_no_constants)
    except _Malformed as exc:
        ctx.report(MALFORMED, str(exc), hloc)
        return
    except json.JSONDecodeError as exc:
        ctx.report(MALFORMED, f"header is not valid JSON: {exc.msg} at character {exc.pos}",
                   hloc)
        return
    except RecursionError:
        ctx.report(MALFORMED, "header JSON nests too deeply", hloc)
        return
    if not isinstance(header, dict):
        ctx.report(MALFORMED, "header JSON is not an object", hloc)
        return
    ranges: list[tuple[int, int, str]] = []
    for name, info in header.items():
        tloc = Location(offset=8, detail=f"tensor {name!r}")
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(
                isinstance(v, str) for v in info.values()
            ):
                ctx.report(MALFORMED, "__metadata__ must map strings to strings",
                           Location(offset=8, detail="__metadata__"))
                return
            continue
        err = _check_tensor(name, info, ranges, ctx, tloc)
        if err is not None:
            ctx.report(MALFORMED, err, tloc)
            return
    if any(f.rule == READER_EXPLOIT.id for f in ctx.findings):
        return
    _check_layout(ranges, buffer_size, ctx)


def _check_tensor(
    name: str, info: object, ranges: list[tuple[int, int, str]], ctx: ScanContext,
    loc: Location,
) -> str | None:
    if not isinstance(info, dict):
        return f"tensor {name!r}: entry is not an object"
    extra = set(info) - {"dtype", "shape", "data_offsets"}
    if extra or len(info) != 3:
        missing = {"dtype", "shape", "data_offsets"} - set(info)
        return f"tensor {name!r}: " + (
            f"missing {sorted(missing)}" if missing else f"unknown fields {sorted(extra)}"
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return f"tensor {name!r}: unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"tensor {name!r}: shape must be a list of non-negative integers"
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)):
        return f"tensor {name!r}: data_offsets must be two non-negative integers"
    begin, end = offsets
    elements = 1
    for d in shape:
        elements *= d
        if elements > ABSURD_BYTES * 8:
            break
    nbits = elements * DTYPE_BITS[dtype]
    if end >= ABSURD_BYTES or nbits >= ABSURD_BYTES * 8:
        ctx.report(READER_EXPLOIT, f"tensor {name!r}: declared size or offset beyond 2**48 "
                   f"bytes (shape {shape[:8]}, offsets {offsets}) — integer-overflow bait", loc)
        return None
    if begin > end:
        return f"tensor {name!r}: data_offsets begin {begin} is after end {end}"
    if nbits % 8:
        return f"tensor {name!r}: {elements} {dtype} elements do not fill whole bytes"
    if nbits // 8 != end - begin:
        return (f"tensor {name!r}: shape {shape} of {dtype} needs {nbits // 8} bytes but "
                f"data_offsets span {end - begin}")
    ranges.append((begin, end, name))
    return None


def _check_layout(ranges: list[tuple[int, int, str]], buffer_size: int,
                  ctx: ScanContext) -> None:
    ranges.sort()
    expected = 0
    previous = ""
    for begin, end, name in ranges:
        loc = Location(offset=8, detail=f"tensor {name!r}")
        if begin < expected and begin == end:
            ctx.report(MALFORMED, f"empty tensor {name!r} sits inside tensor {previous!r}", loc)
            return
        if begin < expected:
            ctx.report(READER_EXPLOIT, f"tensor {name!r} bytes [{begin}, {end}) overlap "
                       f"tensor {previous!r}", loc)
            return
        if begin > expected:
            ctx.report(MALFORMED, f"gap of {begin - expected} bytes before tensor {name!r} "
                       f"(offset {expected})", loc)
            return
        expected, previous = end, name
    if expected > buffer_size:
        ctx.report(MALFORMED, f"tensors need {expected} data bytes but the file holds "
                   f"{buffer_size} after the header (truncated or offsets past the end)",
                   Location(detail="data buffer"))
    elif expected < buffer_size:
        ctx.report(TRAILING, f"{buffer_size - expected} bytes after the last tensor are not "
                   "covered by any tensor", Location(detail="data buffer"))
