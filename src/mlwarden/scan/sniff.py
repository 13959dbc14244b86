"""Identify content by its bytes. File names never choose a reader."""

from __future__ import annotations

import codecs
import re
import struct

from mlwarden.scan.formats import inert_formats

HEAD_BYTES = 8192

# Format names used in reports and in the reader table.
EMPTY = "empty"
PICKLE = "pickle"
ZIP = "zip"
TAR = "tar"
GZIP = "gzip"
BZ2 = "bz2"
XZ = "xz"
LZMA = "lzma"
ZLIB = "zlib"
LZ4 = "lz4"
ZSTD = "zstd"
SEVENZ = "7z"
NPY = "npy"
SAFETENSORS = "safetensors"
GGUF = "gguf"
HDF5 = "hdf5"
PROTOBUF = "protobuf"  # ONNX, TF SavedModel, sentencepiece: the reader tells which
NATIVE = "native-code"
IMAGE = "image"
MSGPACK = "msgpack"
TFLITE = "tflite"
TEXT = "text"
WORD2VEC = "word2vec"
JOBLIB_ZFILE = "joblib-zfile"
UNKNOWN = "unknown"

_SIMPLE_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"PK\x03\x04", ZIP),
    (0, b"PK\x05\x06", ZIP),  # empty archive
    (0, b"PK\x07\x08", ZIP),  # spanned marker
    (0, b"\x1f\x8b", GZIP),
    (0, b"\xfd7zXZ\x00", XZ),
    (0, b"7z\xbc\xaf\x27\x1c", SEVENZ),
    (0, b"\x04\x22\x4d\x18", LZ4),
    (0, b"\x28\xb5\x2f\xfd", ZSTD),
    (0, b"\x93NUMPY", NPY),
    (0, b"GGUF", GGUF),
    (0, b"\x89HDF\r\n\x1a\n", HDF5),
    (0, b"\x7fELF", NATIVE),
    (0, b"\xcf\xfa\xed\xfe", NATIVE),
    (0, b"\xce\xfa\xed\xfe", NATIVE),
    (0, b"\xfe\xed\xfa\xcf", NATIVE),
    (0, b"\x89PNG\r\n\x1a\n", IMAGE),
    (0, b"\xff\xd8\xff", IMAGE),
    (0, b"GIF87a", IMAGE),
    (0, b"GIF89a", IMAGE),
    (4, b"TFL3", TFLITE),
]

# The same table by first byte (offset-0 entries, in table order): one dict lookup
# instead of twenty slices per file. Entries at other offsets are checked afterwards, as
# they come last in the table.
_MAGIC_BY_FIRST: dict[int, list[tuple[bytes, str]]] = {}
for _off, _magic, _fmt in _SIMPLE_MAGIC:
    if _off == 0:
        _MAGIC_BY_FIRST.setdefault(_magic[0], []).append((_magic, _fmt))
_MAGIC_ELSEWHERE = [(o, mg, f) for o, mg, f in _SIMPLE_MAGIC if o != 0]

# Opcodes a protocol 0/1 pickle can plausibly start with.
_P0_START = set(b"(}])cNILFSVXTUKMJGi")


def sniff(head: bytes, size: int) -> str:
    """Best identification of ``head`` (the first bytes of a ``size``-byte stream)."""
    if size == 0:
        return EMPTY
    for magic, fmt in _MAGIC_BY_FIRST.get(head[0] if head else -1, ()):
        if head.startswith(magic):
            return fmt
    for offset, magic, fmt in _MAGIC_ELSEWHERE:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    # A safetensors header length of 128..133 bytes starts with 0x80 0x00 like a PROTO
    # opcode; the engine still checks such files as pickles (looks_like_proto_pickle).
    if head[:2] == b"ZF" and zfile_length(head) is not None:
        return JOBLIB_ZFILE
    if _is_safetensors(head, size):
        return SAFETENSORS
    if looks_like_proto_pickle(head):
        return PICKLE
    if head[:3] == b"BZh" and head[3:4].isdigit():
        return BZ2
    # '(' and 'X' can also open a zlib header; a pickle that parses to STOP wins. Text
    # heads are left to the text reader: every text file is also read as a pickle from
    # offset 0 (scan/shadow.py) and judged as one when that reading is a pickle.
    if head[0] in _P0_START and not _is_text(head) and _looks_like_old_pickle(head, size):
        return PICKLE
    if _is_zlib(head) and _inflates(head):
        return ZLIB
    if head[:3] == b"\x5d\x00\x00":
        return LZMA
    if len(head) > 262 and head[257:262] == b"ustar":
        return TAR
    if head[:2] == b"MZ" and _is_pe(head):
        return NATIVE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return IMAGE
    if inert_formats.hdf5_user_block(head):
        return HDF5  # MATLAB 7.3 files: HDF5 after a 512-byte user block
    inert = inert_formats.identify(head, size)
    if inert is not None:
        return inert[0]
    if inert_formats.word2vec_header(head) is not None and not _is_text(head):
        return WORD2VEC
    # Small protobufs (ONNX, SavedModel) can be valid UTF-8; their tag bytes (0x08, 0x12,
    # 0x1a ...) are control characters that text does not contain.
    if _is_text(head) and not (_BINARY_CONTROLS.search(head) and _is_protobuf(head)):
        return TEXT
    if _is_protobuf(head):
        return PROTOBUF
    if _is_msgpack(head, size):
        return MSGPACK
    if b"\x00" not in head and not _BINARY_CONTROLS.search(head):
        return TEXT  # text in a legacy 8-bit encoding (cp1252, cp852 ...)
    return UNKNOWN


ZF_MAX_LEN = 19  # joblib's _MAX_LEN: len(hex(2**64))


def zfile_length(head: bytes) -> int | None:
    """The declared payload length when ``head`` starts an old joblib ``ZF`` file
    (numpy_pickle_compat.read_zfile: ``int(header[2:21], 16)``)."""
    if head[:2] != b"ZF" or len(head) < 2 + ZF_MAX_LEN:
        return None
    try:
        return int(head[2:2 + ZF_MAX_LEN], 16)  # int() accepts the ljust padding
    except ValueError:
        return None


def looks_like_proto_pickle(head: bytes) -> bool:
    """Starts with a PROTO opcode: what torch.load and pickle.load would start executing."""
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def _is_zlib(head: bytes) -> bool:
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0 and not flg & 0x20


def _inflates(head: bytes) -> bool:
    """A zlib header is two bytes that text ('(', 'X') and protobuf (0x08 + a varint)
    also start with: a zlib stream only if its start really inflates."""
    import zlib

    try:
        zlib.decompressobj().decompress(head[:4096], 1 << 16)
    except zlib.error:
        return False
    return True


def _is_pe(head: bytes) -> bool:
    if len(head) < 0x40:
        return False
    (pe_off,) = struct.unpack_from("<I", head, 0x3C)
    return head[pe_off : pe_off + 4] == b"PE\x00\x00" if pe_off + 4 <= len(head) else True


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9 or size < 10:
        return False
    (n,) = struct.unpack_from("<Q", head, 0)
    # The header is JSON starting with '{'; readers decide whether it is well-formed.
    # A length past the end (< 2**48, so the high bytes are NUL and it is not text) is
    # still a safetensors file, a truncated or hostile one: its reader reports it.
    return (2 <= n <= size - 8 or 2 <= n < 1 << 48) and head[8:9] == b"{"


_OLD_PICKLE_RUN = 64


def _looks_like_old_pickle(head: bytes, size: int) -> bool:
    """Protocol 0/1 streams have no PROTO opcode: accept only a run of valid opcodes that
    reaches STOP, is long (prose breaks within a few opcodes, at its first space), or fills
    the whole sniffed head. Opcodes are validated as ``pickletools.genops`` validates them
    (same outcome; genops decodes every argument and costs ten times more)."""
    count, pos = 0, 0
    while True:
        ok, nxt = _old_op(head, pos)
        if not ok:
            # A valid prefix cut off by the end of the head still counts.
            return len(head) < size and count >= 16 and nxt >= len(head) - 256
        count += 1
        if head[pos] == 0x2E:  # STOP
            return count >= 2
        if count >= _OLD_PICKLE_RUN:
            return True
        pos = nxt


# Opcode byte -> its argument as pickletools describes it: n >= 0 fixed bytes, -1 a line,
# -2/-3/-4/-5 a 1-byte / signed 4-byte / unsigned 4-byte / 8-byte length, then the bytes.
_ARGS = {
    0x28: 0, 0x29: 0, 0x2E: 0, 0x30: 0, 0x31: 0, 0x32: 0, 0x42: -4, 0x43: -2, 0x46: -1,
    0x47: 8, 0x49: -1, 0x4A: 4, 0x4B: 1, 0x4C: -1, 0x4D: 2, 0x4E: 0, 0x50: -1, 0x51: 0,
    0x52: 0, 0x53: -1, 0x54: -3, 0x55: -2, 0x56: -1, 0x58: -4, 0x5D: 0, 0x61: 0, 0x62: 0,
    0x63: -1, 0x64: 0, 0x65: 0, 0x67: -1, 0x68: 1, 0x69: -1, 0x6A: 4, 0x6C: 0, 0x6F: 0,
    0x70: -1, 0x71: 1, 0x72: 4, 0x73: 0, 0x74: 0, 0x75: 0, 0x7D: 0, 0x80: 1, 0x81: 0,
    0x82: 1, 0x83: 2, 0x84: 4, 0x85: 0, 0x86: 0, 0x87: 0, 0x88: 0, 0x89: 0, 0x8A: -2,
    0x8B: -3, 0x8C: -2, 0x8D: -5, 0x8E: -5, 0x8F: 0, 0x90: 0, 0x91: 0, 0x92: 0, 0x93: 0,
    0x94: 0, 0x95: 8, 0x96: -5, 0x97: 0, 0x98: 0,
}
_LENGTHS = {-2: (1, "<B"), -3: (4, "<i"), -4: (4, "<I"), -5: (8, "<Q")}
_UTF8_ARGS = frozenset({0x58, 0x8C, 0x8D})  # BINUNICODE, SHORT_BINUNICODE, BINUNICODE8


def _old_op(head: bytes, pos: int) -> tuple[bool, int]:
    """(valid, where genops's stream is after it) for the opcode at ``pos``."""
    size = len(head)
    if pos >= size:
        return False, size
    op = head[pos]
    n = _ARGS.get(op)
    if n is None:
        return False, pos + 1
    if n >= 0:
        return (True, pos + 1 + n) if pos + 1 + n <= size else (False, size)
    if n == -1:
        nl = head.find(b"\n", pos + 1)
        if nl < 0:
            return False, size
        if not _valid_line(op, head[pos + 1:nl]):
            return False, nl + 1
        if op not in (0x63, 0x69):
            return True, nl + 1
        nl2 = head.find(b"\n", nl + 1)  # GLOBAL, INST: a second line
        if nl2 < 0:
            return False, size
        return _valid_line(op, head[nl + 1:nl2]), nl2 + 1
    width, code = _LENGTHS[n]
    if pos + 1 + width > size:
        return False, size
    (length,) = struct.unpack_from(code, head, pos + 1)
    if length < 0:
        return False, pos + 1 + width
    end = pos + 1 + width + length
    if end > size:
        return False, size
    if op in _UTF8_ARGS:
        try:
            head[pos + 1 + width:end].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return False, end
    return True, end


def _valid_line(op: int, line: bytes) -> bool:
    """The line argument decodes as pickletools decodes it."""
    try:
        if op in (0x49, 0x67, 0x70):  # INT, GET, PUT
            if line not in (b"00", b"01"):
                int(line)
        elif op == 0x4C:  # LONG
            int(line[:-1] if line[-1:] == b"L" else line)
        elif op == 0x46:  # FLOAT
            float(line)
        elif op == 0x53:  # STRING: quoted, escapes decode to ASCII
            quote = line[:1]
            if quote not in (b"'", b'"') or not line.endswith(quote):
                return False
            codecs.escape_decode(line[1:-1])[0].decode("ascii")
        elif op == 0x56:  # UNICODE
            line.decode("raw-unicode-escape")
        else:  # PERSID, GLOBAL, INST lines
            codecs.escape_decode(line)[0].decode("ascii")
    except (ValueError, UnicodeDecodeError, DeprecationWarning):  # the last under -W error
        return False
    return True


_BINARY_CONTROLS = re.compile(rb"[\x01-\x08\x0e-\x1a\x1c-\x1f]")


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the head is still text.
        if exc.start < len(head) - 4:
            return False
    return True


def _is_protobuf(head: bytes) -> bool:
    """A run of well-formed protobuf fields from the first byte."""
    pos, fields = 0, 0
    limit = min(len(head), 512)
    while pos < limit and fields < 8:
        key, pos = _varint(head, pos)
        if key is None or key >> 3 == 0:
            return False
        wire = key & 7
        if wire == 0:
            val, pos = _varint(head, pos)
            if val is None:
                return False
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(head, pos)
            if length is None:
                return False
            pos += length
        elif wire == 5:
            pos += 4
        else:
            return False
        fields += 1
    return fields >= 2 or (fields == 1 and pos >= limit)


def _varint(buf: bytes, pos: int) -> tuple[int | None, int]:
    result = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    return None, pos


def _is_msgpack(head: bytes, size: int) -> bool:
    """A msgpack map (Flax weights) or array (wordfreq lists) whose first entries parse:
    one leading byte in the container range is not enough, since random bytes start with
    one 1 time in 8. The reader then walks the whole document."""
    if not head or not (head[0] in (0xDC, 0xDD, 0xDE, 0xDF) or 0x80 <= head[0] <= 0x9F):
        return False
    budget = [64]
    try:
        end = _msgpack_skip(head, 0, depth=0, budget=budget)
    except _Truncated:
        if budget[0] < 0:
            return True  # 64 well-formed objects: enough structure to call it msgpack
        # Ran off the sniffed head: plausible only after real structure.
        return len(head) < size and budget[0] <= 64 - 16
    except ValueError:
        return False
    return end == size  # one object filling the file, as Flax writes it


class _Truncated(Exception):
    pass


def _msgpack_need(buf: bytes, pos: int, n: int) -> int:
    if pos + n > len(buf):
        raise _Truncated
    return pos + n


# Fixed-size scalars: extra bytes after the type byte.
_MSGPACK_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2,
                  0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
# bin/str/ext: width of the big-endian length field (ext adds a type byte).
_MSGPACK_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4,
                  0xC7: 1, 0xC8: 2, 0xC9: 4}
_MSGPACK_EXT = (0xC7, 0xC8, 0xC9)
# Containers: (fix range start, 16-bit type byte, 32-bit type byte).
_MSGPACK_MAP = (0x80, 0xDE, 0xDF)
_MSGPACK_ARRAY = (0x90, 0xDC, 0xDD)


def _msgpack_count(buf: bytes, pos: int, b: int, kind: tuple[int, int, int]
                   ) -> tuple[int, int] | None:
    """(element count, offset after the header) when ``b`` opens a container of ``kind``."""
    fix, wide16, wide32 = kind
    if fix <= b <= fix + 0x0F:
        return b & 0x0F, pos
    if b in (wide16, wide32):
        w = 2 if b == wide16 else 4
        return int.from_bytes(buf[pos:_msgpack_need(buf, pos, w)], "big"), pos + w
    return None


def _msgpack_skip(buf: bytes, pos: int, depth: int, budget: list[int]) -> int:
    """Offset after the object at ``pos``; map keys must be strings (as Flax writes)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _Truncated  # enough structure seen
    if depth > 32:
        raise ValueError("too deep")
    if pos >= len(buf):
        raise _Truncated
    b = buf[pos]
    pos += 1
    if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
        return pos
    if 0xA0 <= b <= 0xBF:
        return _msgpack_need(buf, pos, b & 0x1F)
    if (head := _msgpack_count(buf, pos, b, _MSGPACK_MAP)) is not None:
        n, pos = head
        for _ in range(n):
            if pos >= len(buf):
                raise _Truncated
            key = buf[pos]
            if not (0xA0 <= key <= 0xBF or key in (0xD9, 0xDA, 0xDB) or key <= 0x7F
                    or key in (0xCC, 0xCD, 0xCE, 0xCF)):
                raise ValueError("map key is not a string or an unsigned int")
            pos = _msgpack_skip(buf, pos, depth + 1, budget)
            pos = _msgpack_skip(buf, pos, depth + 1, budget)
        return pos
    if (head := _msgpack_count(buf, pos, b, _MSGPACK_ARRAY)) is not None:
        n, pos = head
        for _ in range(n):
            pos = _msgpack_skip(buf, pos, depth + 1, budget)
        return pos
    if b in _MSGPACK_FIXED:
        return _msgpack_need(buf, pos, _MSGPACK_FIXED[b])
    if b in _MSGPACK_SIZED:
        w = _MSGPACK_SIZED[b]
        n = int.from_bytes(buf[pos:_msgpack_need(buf, pos, w)], "big")
        pos += w + (1 if b in _MSGPACK_EXT else 0)
        return _msgpack_need(buf, pos, n)
    raise ValueError(f"byte 0x{b:02x} is not msgpack")
