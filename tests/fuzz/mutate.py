"""Structure-aware byte mutations for fuzzing the readers.

Beyond random flips, the operators that find reader bugs are the ones that lie about sizes:
``maximise_length`` finds little-endian integers that look like lengths or offsets of the
file and sets them to extremes (0, 2**31-1, 2**63-1, size-1, size+1 ...); ``varint`` does the
same for protobuf varints and ``number`` for decimal numbers in text. ``nest`` wraps a
mutant in a container so that the member paths of the archive readers are fuzzed too.
Everything is a pure function of the ``random.Random`` it is given (reproducible).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence

MAX_MUTANT = 4 << 20  # bytes; keeps a campaign's own memory small

_WIDTHS = (("<H", 2), ("<I", 4), ("<Q", 8), (">I", 4), ("<i", 4), ("<q", 8))
_EXTREMES = (0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
             2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1)
_TOKENS: tuple[bytes, ...] = (
    b"\x00", b"\xff" * 8, b"[" * 4000, b"{" * 4000, b'{"a":' * 3000, b"(" * 3000,
    b"{{", b"{%", b"%}", b"}}", b"{% for x in x %}" * 50, b"__class__", b"\\u0000",
    b"\xef\xbb\xbf", b"\x80\x05", b"\x80\x02c", b"PK\x03\x04", b"PK\x01\x02",
    b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"GGUF", b"\x89HDF\r\n\x1a\n",
    b"\x93NUMPY", b"ustar\x00", b"1e9999", b"-1", b"NaN", b"9" * 400, b"\n" * 200,
    b'"' * 50, b"\\" * 50, b"\xc0\x80", b"\xed\xa0\x80", b"def f(:\n", b"lambda: " * 500,
)


def flip(data: bytearray, rng: random.Random) -> None:
    """Overwrite a few bytes, half the time in the first KiB where headers live."""
    if not data:
        data.append(rng.randrange(256))
        return
    for _ in range(rng.randint(1, 8)):
        span = min(len(data), 1024) if rng.random() < 0.5 else len(data)
        pos = rng.randrange(span)
        if rng.random() < 0.5:
            data[pos] ^= 1 << rng.randrange(8)
        else:
            data[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def insert(data: bytearray, rng: random.Random) -> None:
    pos = rng.randrange(len(data) + 1)
    kind = rng.randrange(4)
    if kind == 0:
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 1:
        blob = bytes([rng.randrange(256)]) * rng.choice((1, 16, 255, 4096, 65537))
    elif kind == 2:
        blob = rng.choice(_TOKENS)
    else:  # duplicate a chunk of the file itself
        a = rng.randrange(len(data) + 1)
        blob = bytes(data[a : a + rng.randint(1, 512)]) * rng.randint(1, 8)
    data[pos:pos] = blob


def delete(data: bytearray, rng: random.Random) -> None:
    if len(data) < 2:
        return
    pos = rng.randrange(len(data))
    del data[pos : pos + rng.choice((1, 2, 4, 8, rng.randint(1, 512)))]


def truncate(data: bytearray, rng: random.Random) -> None:
    if len(data) < 2:
        return
    cut = rng.randrange(1, len(data)) if rng.random() < 0.7 else rng.randrange(
        max(1, len(data) - 64), len(data))
    del data[cut:]


def _length_candidates(data: bytes, fmt: str, width: int) -> list[int]:
    """Offsets of integers that could be a length or an offset of this file."""
    size = len(data)
    out = []
    for pos in range(0, max(0, size - width + 1)):
        (v,) = struct.unpack_from(fmt, data, pos)
        if 0 < v <= size + 16 and (v >= 4 or width == 8):
            out.append(pos)
        if len(out) > 4000:
            break
    return out


def maximise_length(data: bytearray, rng: random.Random) -> None:
    """Set an integer that looks like a length or offset to an extreme or off-by-one value."""
    fmt, width = rng.choice(_WIDTHS)
    # Headers hold the lengths: search the first 64 KiB and the last 64 KiB (zip, 7z).
    from_head = rng.random() < 0.7 or len(data) <= 65536
    window = bytes(data[:65536]) if from_head else bytes(data[-65536:])
    base = 0 if from_head else len(data) - len(window)
    cands = _length_candidates(window, fmt, width)
    if not cands:
        return flip(data, rng)
    pos = base + rng.choice(cands)
    (v,) = struct.unpack_from(fmt, data, pos)
    size = len(data)
    choices = [*_EXTREMES, v - 1, v + 1, v * 2, size - 1, size, size + 1, size - pos,
               v + size]
    bits = 8 * width
    signed = fmt[-1].islower() and fmt[-1] in "iq"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    new = rng.choice(choices)
    new = min(max(new, lo), hi)
    struct.pack_into(fmt, data, pos, new)


def _encode_varint(v: int) -> bytes:
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(data: bytearray, rng: random.Random) -> None:
    """Replace a protobuf length varint (after a wire-type-2 tag) with an extreme value."""
    cands = [i for i in range(min(len(data) - 1, 65536)) if data[i] & 7 == 2 and data[i] < 0x80]
    if not cands:
        return flip(data, rng)
    tag = rng.choice(cands)
    end = tag + 1
    while end < len(data) and data[end] & 0x80:
        end += 1
    end += 1
    old = 0
    for i, b in enumerate(data[tag + 1 : end]):
        old |= (b & 0x7F) << (7 * i)
    new = rng.choice((0, 1, old + 1, old - 1, len(data), 2**31 - 1, 2**32, 2**63, 2**64 - 1))
    data[tag + 1 : end] = _encode_varint(max(new, 0))


def number(data: bytearray, rng: random.Random) -> None:
    """Replace a decimal number in text (JSON shapes, offsets, counts) with an extreme."""
    text = bytes(data)
    starts = [i for i in range(min(len(text), 65536)) if 48 <= text[i] <= 57
              and (i == 0 or not 48 <= text[i - 1] <= 57)]
    if not starts:
        return insert(data, rng)
    pos = rng.choice(starts)
    end = pos
    while end < len(text) and 48 <= text[end] <= 57:
        end += 1
    new = rng.choice((b"0", b"-1", b"18446744073709551615", b"9223372036854775807",
                      b"1e308", b"99999999999999999999999999999999", b"2147483648",
                      b"1" + b"0" * 5000))
    data[pos:end] = new


def splice(data: bytearray, rng: random.Random, others: Sequence[bytes]) -> None:
    if not others:
        return flip(data, rng)
    other = rng.choice(others)
    a = rng.randrange(len(data) + 1)
    b = rng.randrange(len(other) + 1)
    data[a:] = other[b : b + rng.choice((len(other), 16, 256, 4096))]


def repeat_block(data: bytearray, rng: random.Random) -> None:
    """Duplicate a structural block many times (entries, opcodes, tar headers)."""
    if not data:
        return
    a = rng.randrange(len(data))
    n = rng.choice((8, 64, 512))
    chunk = bytes(data[a : a + n])
    data[a:a] = chunk * rng.choice((2, 16, 256))


MUTATORS: dict[str, Callable[[bytearray, random.Random], None]] = {
    "flip": flip,
    "insert": insert,
    "delete": delete,
    "truncate": truncate,
    "length": maximise_length,
    "varint": varint,
    "number": number,
    "repeat": repeat_block,
}
_WEIGHTS = {"flip": 5, "insert": 2, "delete": 2, "truncate": 2, "length": 5, "varint": 1,
            "number": 1, "repeat": 1}


# ----------------------------------------------------------------- nesting


def nest(data: bytes, inner_name: str, rng: random.Random) -> tuple[bytes, str]:
    """Wrap ``data`` in a container; returns the container bytes and its file name."""
    kind = rng.choice(("zip", "zip_stored", "tar", "gzip", "bz2", "xz", "zlib", "lz4",
                       "zstd"))
    if kind.startswith("zip"):
        buf = io.BytesIO()
        method = zipfile.ZIP_STORED if kind == "zip_stored" else zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(buf, "w", method) as z:
            z.writestr(f"repo/{inner_name}", data)
        return buf.getvalue(), "wrapped.zip"
    if kind == "tar":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            ti = tarfile.TarInfo(f"repo/{inner_name}")
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        return buf.getvalue(), "wrapped.tar"
    if kind == "gzip":
        return gzip.compress(data, 1), inner_name + ".gz"
    if kind == "bz2":
        return bz2.compress(data, 1), inner_name + ".bz2"
    if kind == "xz":
        return lzma.compress(data, preset=0), inner_name + ".xz"
    if kind == "zlib":
        return zlib.compress(data, 1), inner_name + ".z"
    if kind == "lz4":
        import lz4.frame

        return lz4.frame.compress(data), inner_name + ".lz4"
    import zstandard

    return zstandard.ZstdCompressor(level=1).compress(data), inner_name + ".zst"


def mutate(data: bytes, rng: random.Random, others: Sequence[bytes] = ()) -> tuple[bytes, str]:
    """One mutant of ``data``: 1-3 stacked mutations; returns (bytes, description)."""
    buf = bytearray(data)
    names = list(_WEIGHTS)
    weights = [_WEIGHTS[n] for n in names]
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        if others and rng.random() < 0.05:
            splice(buf, rng, others)
            steps.append("splice")
        else:
            name = rng.choices(names, weights)[0]
            MUTATORS[name](buf, rng)
            steps.append(name)
        if len(buf) > MAX_MUTANT:
            del buf[MAX_MUTANT:]
    return bytes(buf), "+".join(steps)
