"""GGUF (llama.cpp): header, metadata and tensor infos parsed with bounded counts and lengths;
tensor data is never read. Every ``tokenizer.chat_template*`` goes to the template analyser.

Layout (versions 1-3; v1 uses 32-bit counts and lengths): ``GGUF``, version, tensor count,
metadata count, metadata key/values (typed, arrays may nest), tensor infos (name, dims,
ggml type, offset), padding to ``general.alignment``, tensor data.

Verdict policy (docs/formats.md):
- truncation, bad version, unknown value types, misaligned offsets -> ``gguf-malformed``
  (unscannable) with the exact reason;
- declared lengths/counts no writer produces (strings or arrays beyond the metadata bound,
  more dims than ggml supports, element counts that overflow 64 bits, overlapping tensors,
  offsets beyond 2**48) -> ``gguf-reader-exploit`` (malicious): they target the C parsers'
  allocation and bounds arithmetic;
- duplicate keys -> ``gguf-duplicate-key`` (suspicious); chat templates -> template rules.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.source import Source
from mlwarden.scan.templates import TemplateBudget, analyze_template

CHUNK = 64 << 10  # read-ahead window: metadata only, never much tensor data
MAX_KV = 1 << 20  # metadata entries; real files have < 100
MAX_TENSORS = 1 << 22  # real files have < 100k
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 8
ABSURD = 1 << 48
MAX_TEMPLATE_BYTES = 4 << 20

# ggml type id -> (block size in elements, bytes per block); mirrors gguf.GGML_QUANT_SIZES.
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
# value type -> struct code for scalars; 8 = string, 9 = array.
_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
                            10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

MALFORMED = rule(
    "gguf-malformed",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "Malformed or truncated GGUF file",
    "The header, metadata or tensor table breaks the format (truncation, unknown value "
    "type, misaligned offsets). The message gives the exact reason.",
)
READER_EXPLOIT = rule(
    "gguf-reader-exploit",
    Verdict.MALICIOUS,
    Severity.HIGH,
    "GGUF header crafted to attack parsers",
    "String/array lengths or counts far beyond what the file holds, more than 4 tensor "
    "dimensions, element counts that overflow 64 bits, overlapping tensor data or "
    "offsets beyond 2**48 never come from a writer; they target the integer-overflow and "
    "out-of-bounds bugs that llama.cpp's GGUF parser has had.",
)
DUPLICATE_KEY = rule(
    "gguf-duplicate-key",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Duplicate GGUF metadata key",
    "Readers disagree on which value wins (llama.cpp refuses the file, others keep the "
    "first or the last), so a scanner and a loader can see different templates.",
)
SUMMARY = rule(
    "gguf-summary",
    Verdict.CLEAN,
    Severity.INFO,
    "GGUF header and metadata parsed",
    "Version, counts and architecture; tensor data is never read.",
)


class _Stop(Exception):
    """Parsing cannot continue; the finding is already chosen."""

    def __init__(self, exploit: bool, message: str, offset: int) -> None:
        super().__init__(message)
        self.exploit = exploit
        self.message = message
        self.offset = offset


class _Cursor:
    """Forward reader over the file with a bounded window; skips use seek, not read."""

    def __init__(self, fh: BinaryIO, size: int, budget: int, endian: str) -> None:
        self.fh = fh
        self.size = size
        self.budget = budget  # bytes of metadata we are willing to walk
        self.e = endian
        self.buf = b""
        self.off = 0
        self.base = 0  # file offset of buf[0]

    @property
    def pos(self) -> int:
        return self.base + self.off

    def remaining(self) -> int:
        return self.size - self.pos

    def _need(self, n: int, what: str) -> None:
        if n > self.remaining():
            raise _Stop(False, f"{what} needs {n} bytes but only {self.remaining()} remain "
                        "(truncated)", self.pos)
        if self.pos + n > self.budget:
            raise _Budget(self.pos)

    def take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        if self.off + n > len(self.buf):
            rest = self.buf[self.off:]
            self.fh.seek(self.pos + len(rest))
            more = self.fh.read(max(CHUNK, n - len(rest)))
            self.base, self.buf, self.off = self.pos, rest + more, 0
            if len(self.buf) < n:
                raise _Stop(False, f"{what}: file shrank while reading", self.pos)
        data = self.buf[self.off:self.off + n]
        self.off += n
        return data

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        if self.off + n <= len(self.buf):
            self.off += n
        else:
            self.base, self.buf, self.off = self.pos + n, b"", 0

    def unpack(self, fmt: str, what: str) -> int | float | bool:
        s = _struct(self.e + fmt)
        value: int | float | bool = s.unpack(self.take(s.size, what))[0]
        return value

    def skip_strings(self, n: int, wide: bool, what: str) -> None:
        """Skip ``n`` length-prefixed strings (token vocabularies): the hot loop."""
        s = _struct(self.e + ("Q" if wide else "I"))
        width = s.size
        for _ in range(n):
            if self.off + width > len(self.buf):
                (length,) = s.unpack(self.take(width, what))
            else:
                self._need(width, what)
                (length,) = s.unpack_from(self.buf, self.off)
                self.off += width
            if length > self.budget:
                raise _Stop(True, f"{what} declares {length} bytes, beyond the "
                            f"{self.budget}-byte metadata bound", self.pos)
            if self.off + length <= len(self.buf) and self.pos + length <= self.budget:
                self.off += length
            else:
                self.skip(length, what)


_STRUCTS: dict[str, struct.Struct] = {}


def _struct(fmt: str) -> struct.Struct:
    s = _STRUCTS.get(fmt)
    if s is None:
        s = _STRUCTS[fmt] = struct.Struct(fmt)
    return s


class _Budget(Exception):
    def __init__(self, offset: int) -> None:
        self.offset = offset


@dataclass
class _Header:
    version: int
    n_tensors: int
    n_kv: int
    wide: bool  # 64-bit counts and lengths (v2+)


def read_gguf(source: Source, ctx: ScanContext) -> None:
    ctx.format = "gguf"
    with source.open() as fh:
        try:
            _parse(fh, source.size, ctx)
        except _Stop as stop:
            ctx.report(READER_EXPLOIT if stop.exploit else MALFORMED, stop.message,
                       Location(offset=stop.offset))
        except _Budget as b:
            ctx.limit(f"metadata larger than the {ctx.limits.max_header_bytes}-byte bound; "
                      "analysis stopped", Location(offset=b.offset))


def _parse(fh: BinaryIO, size: int, ctx: ScanContext) -> None:
    head = fh.read(24)
    if len(head) < 8 or head[:4] != b"GGUF":
        raise _Stop(False, "file too short for a GGUF header", 0)
    endian = "<"
    (version,) = struct.unpack_from("<I", head, 4)
    if version not in (1, 2, 3):
        (be,) = struct.unpack_from(">I", head, 4)
        if be in (2, 3):
            endian, version = ">", be
        else:
            raise _Stop(False, f"unsupported GGUF version {version}", 4)
    cur = _Cursor(fh, size, ctx.limits.max_header_bytes, endian)
    cur.skip(8, "header")
    wide = version >= 2
    count = "Q" if wide else "I"
    n_tensors = int(cur.unpack(count, "tensor count"))
    n_kv = int(cur.unpack(count, "metadata count"))
    hdr = _Header(version, n_tensors, n_kv, wide)
    # Every entry takes at least 13 (metadata) / 24 (tensor info) bytes.
    _plausible(n_kv, 13, MAX_KV, cur, "metadata count")
    _plausible(n_tensors, 24, MAX_TENSORS, cur, "tensor count")
    meta = _read_metadata(cur, hdr, ctx)
    alignment = meta.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Stop(False, f"general.alignment {alignment!r} is not a power of two", cur.pos)
    tensors = _read_tensor_infos(cur, hdr)
    data_start = -(-cur.pos // alignment) * alignment
    _check_tensors(tensors, data_start, alignment, size, ctx)
    arch = meta.get("general.architecture")
    ctx.report(SUMMARY, f"GGUF v{version}{' big-endian' if endian == '>' else ''}: "
               f"{n_tensors} tensors, {n_kv} metadata keys"
               + (f", architecture {arch!r}" if isinstance(arch, str) else ""))


def _plausible(n: int, min_size: int, cap: int, cur: _Cursor, what: str) -> None:
    if n > cap or n * min_size > cur.budget:
        raise _Stop(True, f"{what} {n} is beyond any real file (bound {cap})", cur.pos)
    if n * min_size > cur.remaining():
        raise _Stop(False, f"{what} {n} cannot fit in the {cur.remaining()} bytes left "
                    "(truncated)", cur.pos)


def _string(cur: _Cursor, hdr: _Header, what: str, keep_max: int) -> bytes | None:
    """The string's bytes when at most ``keep_max`` long, else None (skipped unread)."""
    n = int(cur.unpack("Q" if hdr.wide else "I", f"{what} length"))
    if n > cur.budget:
        raise _Stop(True, f"{what} declares {n} bytes, beyond the "
                    f"{cur.budget}-byte metadata bound", cur.pos)
    if n <= keep_max:
        return cur.take(n, what)
    cur.skip(n, what)
    return None


def _read_metadata(cur: _Cursor, hdr: _Header, ctx: ScanContext) -> dict[str, object]:
    meta: dict[str, object] = {}
    budget = TemplateBudget()  # shared by every tokenizer.chat_template* of the file
    for i in range(hdr.n_kv):
        start = cur.pos
        raw_key = _string(cur, hdr, f"metadata key #{i}", keep_max=cur.budget)
        assert raw_key is not None
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Stop(False, f"metadata key #{i} is not UTF-8", start) from exc
        vtype = int(cur.unpack("I", f"type of {key!r}"))
        is_template = key.startswith("tokenizer.chat_template")
        value = _value(cur, hdr, vtype, key, depth=0)
        if key in meta:
            ctx.report(DUPLICATE_KEY, f"metadata key {key!r} appears more than once",
                       Location(offset=start, detail=f"metadata {key!r}"))
        meta[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if is_template and vtype == _STRING:
            if value is None:
                ctx.limit(f"chat template {key!r} larger than {MAX_TEMPLATE_BYTES} bytes; "
                          "not analysed", Location(offset=start, detail=f"metadata {key!r}"))
                continue
            assert isinstance(value, bytes)
            analyze_template(value.decode("utf-8", errors="replace"), ctx,
                             Location(offset=start, detail=f"metadata {key!r}"), budget)
    return meta


def _value(cur: _Cursor, hdr: _Header, vtype: int, key: str, depth: int) -> object:
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype], f"value of {key!r}")
    if vtype == _STRING:
        return _string(cur, hdr, f"value of {key!r}", keep_max=MAX_TEMPLATE_BYTES)
    if vtype == _ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise _Stop(True, f"arrays nested deeper than {MAX_ARRAY_DEPTH} in {key!r}",
                        cur.pos)
        etype = int(cur.unpack("I", f"array type of {key!r}"))
        n = int(cur.unpack("Q" if hdr.wide else "I", f"array length of {key!r}"))
        if etype in _SCALARS:
            width = struct.calcsize(_SCALARS[etype])
            if n * width > cur.budget:
                raise _Stop(True, f"array {key!r} declares {n} elements, beyond the "
                            "metadata bound", cur.pos)
            cur.skip(n * width, f"array {key!r}")
            return None
        if etype not in (_STRING, _ARRAY):
            raise _Stop(False, f"array {key!r} has unknown element type {etype}", cur.pos)
        min_size = 8 if hdr.wide else 4
        if n * min_size > cur.budget:
            raise _Stop(True, f"array {key!r} declares {n} elements, beyond the metadata "
                        "bound", cur.pos)
        if n * min_size > cur.remaining():
            raise _Stop(False, f"array {key!r} of {n} elements cannot fit in the file "
                        "(truncated)", cur.pos)
        if etype == _STRING:
            cur.skip_strings(n, hdr.wide, f"element of {key!r}")
        else:
            for _ in range(n):
                _value(cur, hdr, _ARRAY, key, depth + 1)
        return None
    raise _Stop(False, f"metadata {key!r} has unknown value type {vtype}", cur.pos)


@dataclass(frozen=True)
class _Tensor:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    info_offset: int


def _read_tensor_infos(cur: _Cursor, hdr: _Header) -> list[_Tensor]:
    out: list[_Tensor] = []
    dim_fmt = "Q" if hdr.wide else "I"
    for i in range(hdr.n_tensors):
        start = cur.pos
        raw = _string(cur, hdr, f"tensor #{i} name", keep_max=cur.budget)
        assert raw is not None
        name = raw[:200].decode("utf-8", errors="replace")
        n_dims = int(cur.unpack("I", f"tensor {name!r} n_dims"))
        if n_dims > MAX_DIMS:
            raise _Stop(True, f"tensor {name!r} declares {n_dims} dimensions (ggml supports "
                        f"{MAX_DIMS})", start)
        dims = tuple(int(cur.unpack(dim_fmt, f"tensor {name!r} dims")) for _ in range(n_dims))
        ggml_type = int(cur.unpack("I", f"tensor {name!r} type"))
        offset = int(cur.unpack("Q", f"tensor {name!r} offset"))
        out.append(_Tensor(name, dims, ggml_type, offset, start))
    return out


def _check_tensors(tensors: list[_Tensor], data_start: int, alignment: int, size: int,
                   ctx: ScanContext) -> None:
    spans: list[tuple[int, int, str]] = []
    for t in tensors:
        loc = Location(offset=t.info_offset, detail=f"tensor {t.name!r}")
        elements = 1
        for d in t.dims:
            elements *= d
        if elements >= 1 << 63:
            raise _Stop(True, f"tensor {t.name!r} dims {list(t.dims)} overflow a 64-bit "
                        "element count", t.info_offset)
        if t.offset >= ABSURD:
            raise _Stop(True, f"tensor {t.name!r} offset {t.offset} is beyond 2**48",
                        t.info_offset)
        if t.offset % alignment:
            ctx.report(MALFORMED, f"tensor {t.name!r} offset {t.offset} is not a multiple of "
                       f"the alignment {alignment}", loc)
            return
        sizes = GGML_TYPES.get(t.ggml_type)
        if sizes is None:
            continue  # a newer ggml type: layout not checked
        block, per_block = sizes
        if elements % block:
            ctx.report(MALFORMED, f"tensor {t.name!r}: {elements} elements are not a "
                       f"multiple of the type's block of {block}", loc)
            return
        nbytes = elements // block * per_block
        if nbytes >= ABSURD:
            raise _Stop(True, f"tensor {t.name!r} needs {nbytes} bytes, beyond 2**48",
                        t.info_offset)
        spans.append((t.offset, t.offset + nbytes, t.name))
    spans.sort()
    end_prev, prev = 0, ""
    for begin, end, name in spans:
        if begin < end_prev and end > begin:
            raise _Stop(True, f"tensor {name!r} data [{begin}, {end}) overlaps tensor "
                        f"{prev!r}", data_start)
        end_prev, prev = max(end_prev, end), name
    if spans and data_start + end_prev > size:
        ctx.report(MALFORMED, f"tensor data needs {data_start + end_prev} bytes but the file "
                   f"has {size} (truncated, or offsets past the end)",
                   Location(offset=data_start, detail="tensor data"))
