"""A tolerant, bounded zip reader that reads archives the way torch (miniz) reads them.

CPython's ``zipfile`` raises on bad CRC-32s, on flag bits and on local-header names that
differ from the central directory, while torch ignores all three: a scanner built on
``zipfile`` stops where the loader carries on (CVE-2025-10156, CVE-2025-1945,
CVE-2025-1944). This module parses the end-of-central-directory record (ZIP64 too) and
the central directory itself, with bounds, and reads a member only when asked, through
its local header. Every oddity is returned as an :class:`Anomaly` for the caller to
report; nothing here decides verdicts.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

_EOCD_SIG = b"PK\x05\x06"
_EOCD64_SIG = b"PK\x06\x06"
_EOCD64_LOC_SIG = b"PK\x06\x07"
_CD_SIG = b"PK\x01\x02"
_LH_SIG = b"PK\x03\x04"
_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_EOCD64_LOC = struct.Struct("<4sIQI")  # 20 bytes
_CD = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_LH = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_MAX_COMMENT = 0xFFFF

FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8
FLAG_PATCHED = 0x20
FLAG_STRONG_ENCRYPTION = 0x40
FLAG_UTF8 = 0x800
FLAG_MASKED_HEADERS = 0x2000
# Bits that make CPython's zipfile (and miniz, when set in the central directory) refuse
# to read a member: the CVE-2025-1945 family.
REFUSED_FLAGS = FLAG_ENCRYPTED | FLAG_PATCHED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS

STORED, DEFLATED, BZIP2, LZMA, ZSTD = 0, 8, 12, 14, 93
METHOD_NAMES = {STORED: "stored", DEFLATED: "deflate", BZIP2: "bzip2", LZMA: "lzma",
                ZSTD: "zstd", 9: "deflate64", 1: "shrink", 6: "implode", 99: "AES"}
SUPPORTED_METHODS = frozenset({STORED, DEFLATED, BZIP2, LZMA})


class ZipFormatError(Exception):
    """The archive structure is broken beyond what a loader would accept."""


@dataclass(frozen=True)
class Anomaly:
    """Something a strict parser would reject or a careful one would question."""

    kind: str  # prefix | overlap | duplicate | flags | unsafe-name | trailing | layout
    message: str
    member: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class ZipMember:
    """One central-directory entry. Sizes and offsets are what the central directory says
    (the copy torch trusts); ``header_offset`` is absolute in the file."""

    index: int
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    comp_size: int
    size: int
    header_offset: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"method {self.method}")


@dataclass(frozen=True)
class ZipDirectory:
    members: tuple[ZipMember, ...]
    anomalies: tuple[Anomaly, ...]
    first_header: int  # offset of the earliest local header (bytes before it are a prefix)
    cd_offset: int
    cd_end: int
    total_entries: int  # what the end record declares (may exceed len(members))


@dataclass(frozen=True)
class LocalHeader:
    data_offset: int
    raw_name: bytes
    flags: int
    method: int


def decode_name(raw: bytes, flags: int) -> str:
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _read_at(fh: BinaryIO, offset: int, n: int) -> bytes:
    # Offsets come from the archive itself (and a prefix adjustment): never trust them.
    if offset < 0:
        raise ZipFormatError(f"offset {offset} points before the start of the file")
    fh.seek(offset)
    return fh.read(n)


def _find_eocd(fh: BinaryIO, size: int) -> tuple[int, bytes]:
    """Offset and bytes of the end-of-central-directory record, searching back from the end
    over at most one maximal comment (as every zip reader does)."""
    for span in (1024, _EOCD.size + _MAX_COMMENT):
        start = max(0, size - span)
        tail = _read_at(fh, start, size - start)
        pos = tail.rfind(_EOCD_SIG)
        while pos != -1:
            if pos + _EOCD.size <= len(tail):
                return start + pos, tail[pos : pos + _EOCD.size]
            pos = tail.rfind(_EOCD_SIG, 0, pos)
        if start == 0:
            break
    raise ZipFormatError("no end-of-central-directory record (truncated or not a zip)")


def read_directory(fh: BinaryIO, size: int, max_members: int) -> ZipDirectory:
    """Parse the end record(s) and the central directory, never reading member data."""
    eocd_pos, rec = _find_eocd(fh, size)
    (_sig, _disk, _cd_disk, _n_disk, n_total, cd_size, cd_offset, _clen) = _EOCD.unpack(rec)
    anomalies: list[Anomaly] = []
    end_of_records = eocd_pos
    if eocd_pos >= _EOCD64_LOC.size:
        loc = _read_at(fh, eocd_pos - _EOCD64_LOC.size, _EOCD64_LOC.size)
        if loc[:4] == _EOCD64_LOC_SIG:
            _s, _d, rec64_off, _nd = _EOCD64_LOC.unpack(loc)
            rec64 = _read_at(fh, rec64_off, _EOCD64.size) if rec64_off < size else b""
            if len(rec64) == _EOCD64.size and rec64[:4] == _EOCD64_SIG:
                fields = _EOCD64.unpack(rec64)
                n_total, cd_size, cd_offset = fields[7], fields[8], fields[9]
                end_of_records = rec64_off
            else:
                raise ZipFormatError("ZIP64 locator points at no ZIP64 end record")
    # CPython accepts archives whose offsets ignore prepended data; miniz does not.
    # Try the declared offset first, then the one implied by where the directory ends.
    implied = end_of_records - cd_size
    delta = 0
    if cd_offset + cd_size > size or _read_at(fh, cd_offset, 4) != _CD_SIG:
        if n_total and implied >= 0 and _read_at(fh, implied, 4) == _CD_SIG:
            delta = implied - cd_offset
            anomalies.append(Anomaly(
                "layout", f"offsets are shifted by {delta} bytes (data prepended to the "
                "archive); CPython's zipfile compensates, torch does not", offset=implied))
        elif n_total:
            raise ZipFormatError(f"central directory offset {cd_offset} is out of bounds")
    cd_start = cd_offset + delta
    if cd_size > size - cd_start:
        raise ZipFormatError("central directory runs past the end of the file")
    members: list[ZipMember] = []
    # The directory is read in bounded chunks: a member count larger than max_members
    # stops parsing, whatever the declared size.
    fh.seek(cd_start)
    buf = b""
    pos = 0
    consumed = 0
    while consumed < cd_size:
        if len(members) >= max_members:
            break
        need = _CD.size
        if len(buf) - pos < need:
            buf = buf[pos:] + fh.read(min(1 << 20, cd_size - consumed - (len(buf) - pos)))
            pos = 0
        if len(buf) - pos < need:
            raise ZipFormatError("central directory entry truncated")
        f = _CD.unpack_from(buf, pos)
        if f[0] != _CD_SIG:
            raise ZipFormatError(f"bad central directory signature at entry {len(members)}")
        flags, method, crc, csize, usize = f[3], f[4], f[7], f[8], f[9]
        nlen, xlen, clen, offset = f[10], f[11], f[12], f[16]
        total = _CD.size + nlen + xlen + clen
        if len(buf) - pos < total:
            buf = buf[pos:] + fh.read(total)
            pos = 0
            if len(buf) < total:
                raise ZipFormatError("central directory entry truncated")
        raw_name = bytes(buf[pos + _CD.size : pos + _CD.size + nlen])
        extra = buf[pos + _CD.size + nlen : pos + _CD.size + nlen + xlen]
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        members.append(ZipMember(len(members), decode_name(raw_name, flags), raw_name,
                                 flags, method, crc, csize, usize, offset + delta))
        pos += total
        consumed += total
    if n_total > len(members) and len(members) < max_members:
        anomalies.append(Anomaly(
            "layout", f"the end record declares {n_total} entries but the central "
            f"directory holds {len(members)}"))
    first = min((m.header_offset for m in members), default=cd_start)
    anomalies.extend(_check_layout(members, cd_start))
    return ZipDirectory(tuple(members), tuple(anomalies), first, cd_start, cd_start + cd_size,
                        n_total)


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply the ZIP64 extended-information field to the 0xFFFFFFFF placeholders."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + ln]
        if tag == 0x0001:
            i = 0
            vals = []
            while i + 8 <= len(body):
                vals.append(struct.unpack_from("<Q", body, i)[0])
                i += 8
            it = iter(vals)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        pos += 4 + ln
    return usize, csize, offset


def _check_layout(members: list[ZipMember], cd_start: int) -> list[Anomaly]:
    """Overlapping members (the construction of overlapping-entry zip bombs), members that
    reach into the central directory, duplicate names. Uses only central-directory facts:
    a member spans at least 30 header bytes plus its compressed size."""
    out: list[Anomaly] = []
    ordered = sorted(members, key=lambda m: (m.header_offset, m.index))
    overlaps = 0
    first_overlap: tuple[ZipMember, ZipMember] | None = None
    prev: ZipMember | None = None
    prev_end = 0
    for m in ordered:
        if prev is not None and m.header_offset < prev_end:
            overlaps += 1
            first_overlap = first_overlap or (prev, m)
        end = m.header_offset + _LH.size + m.comp_size
        if end > cd_start:
            out.append(Anomaly("layout", f"member data runs into the central directory "
                               f"({end} > {cd_start})", m.name, m.header_offset))
        if end > prev_end:
            prev, prev_end = m, end
    if first_overlap is not None:
        a, b = first_overlap
        out.append(Anomaly(
            "overlap", f"{overlaps} member(s) share bytes with another member (first: "
            f"{b.name!r} starts inside {a.name!r}); no zip writer produces this, it is how "
            "overlapping-entry zip bombs and two-names-one-content tricks are built",
            b.name, b.header_offset))
    seen: dict[bytes, int] = {}
    for m in members:
        if m.raw_name in seen:
            out.append(Anomaly("duplicate", f"name {m.name!r} appears more than once; loaders "
                               "disagree on which copy they read, so every copy is scanned",
                               m.name, m.header_offset))
        seen[m.raw_name] = m.index
    return out


def read_local_header(fh: BinaryIO, size: int, m: ZipMember) -> LocalHeader:
    raw = _read_at(fh, m.header_offset, _LH.size)
    if len(raw) < _LH.size or raw[:4] != _LH_SIG:
        raise ZipFormatError(f"no local header at offset {m.header_offset} for {m.name!r}")
    f = _LH.unpack(raw)
    nlen, xlen = f[9], f[10]
    name = _read_at(fh, m.header_offset + _LH.size, nlen)
    data_offset = m.header_offset + _LH.size + nlen + xlen
    if data_offset + m.comp_size > size:
        raise ZipFormatError(f"{m.name!r}: data runs past the end of the file")
    return LocalHeader(data_offset, name, f[2], f[3])


# --------------------------------------------------------------------------- decompression


class _Inflater(Protocol):
    def feed(self, data: bytes, max_out: int) -> bytes: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def eof(self) -> bool: ...


class _Stored:
    has_end = False

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes, max_out: int) -> bytes:
        data = self._pending + data
        self._pending = data[max_out:]
        return data[:max_out]

    @property
    def needs_input(self) -> bool:
        return not self._pending

    @property
    def eof(self) -> bool:
        return False


class ZlibInflater:
    """zlib/deflate with bounded output per call (``wbits`` selects raw, zlib or gzip)."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._pending = b""

    def feed(self, data: bytes, max_out: int) -> bytes:
        out = self._d.decompress(self._pending + data, max_out)
        self._pending = self._d.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._pending

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


class _Native:
    """bz2/lzma decompressors already bound their output with ``max_length``."""

    def __init__(self, d: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> None:
        self._d = d

    def feed(self, data: bytes, max_out: int) -> bytes:
        return self._d.decompress(data, max_out)

    @property
    def needs_input(self) -> bool:
        return self._d.needs_input

    @property
    def eof(self) -> bool:
        return self._d.eof


# xz -9 uses a 64 MiB dictionary; a larger one only makes the decoder reserve memory.
LZMA_MAX_DICT = 128 << 20


class _ZipLzma:
    """Zip method 14: a 4-byte header and LZMA1 properties, then a raw LZMA1 stream."""

    has_end = False  # the end-of-stream marker is optional (flag bit 1)

    def __init__(self) -> None:
        self._head = b""
        self._d: lzma.LZMADecompressor | None = None

    def feed(self, data: bytes, max_out: int) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 4:
                return b""
            (psize,) = struct.unpack_from("<H", self._head, 2)
            if len(self._head) < 4 + psize:
                return b""
            props = self._head[4 : 4 + psize]
            filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
            # A raw decoder takes no memlimit and allocates the declared dictionary.
            if filt.get("dict_size", 0) > LZMA_MAX_DICT:
                raise ZipFormatError(f"LZMA dictionary of {filt['dict_size']} bytes exceeds "
                                     f"the {LZMA_MAX_DICT}-byte bound")
            self._d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
            data, self._head = self._head[4 + psize :], b""
        return self._d.decompress(data, max_out)

    @property
    def needs_input(self) -> bool:
        return self._d is None or self._d.needs_input

    @property
    def eof(self) -> bool:
        return self._d is not None and self._d.eof


def inflater_for(method: int) -> _Inflater:
    factories: dict[int, Callable[[], _Inflater]] = {
        STORED: _Stored,
        DEFLATED: lambda: ZlibInflater(-15),
        BZIP2: lambda: _Native(bz2.BZ2Decompressor()),
        LZMA: _ZipLzma,
    }
    factory = factories.get(method)
    if factory is None:
        raise ZipFormatError(f"unsupported compression method {METHOD_NAMES.get(method, method)}")
    return factory()


class DecompressingReader:
    """A read-only stream over ``comp_size`` raw bytes at ``offset`` of ``fh``, decompressed
    with bounded output per ``read`` call. Tracks the CRC-32 of what it produced.

    Decompression errors raise :class:`ZipFormatError`; the bytes produced before the
    error stay available to the caller (a loader would have consumed them too).
    """

    CHUNK = 1 << 16

    def __init__(self, fh: BinaryIO, offset: int, comp_size: int, inflater: _Inflater,
                 restart: Callable[[], ZlibInflater] | None = None) -> None:
        # ``restart`` continues after the end of a stream with a fresh decompressor
        # (concatenated gzip members), as GzipFile does.
        self._restart = restart
        self._carry = b""
        self._fh = fh
        self._pos = offset
        self._left = comp_size
        self._inf = inflater
        self.crc = 0
        self.produced = 0
        self.consumed = 0
        self._idle = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 30
        while True:
            if self._inf.eof and not self._next_stream():
                return b""
            data, self._carry = self._carry, b""
            if not data and self._inf.needs_input:
                if self._left <= 0:
                    # Flush whatever the decompressor still holds.
                    out = self._feed(b"", n)
                    if not out and not self._inf.eof and getattr(self._inf, "has_end", True):
                        raise ZipFormatError("compressed stream ends before its end marker")
                    return out
                self._fh.seek(self._pos)
                data = self._fh.read(min(self.CHUNK, self._left))
                if not data:
                    raise ZipFormatError("compressed data truncated")
                self._pos += len(data)
                self._left -= len(data)
                self.consumed += len(data)
            out = self._feed(data, n)
            if out:
                self._idle = 0
                return out
            self._idle += 1
            if self._idle > 100_000:
                raise ZipFormatError("decompressor made no progress")

    def _next_stream(self) -> bool:
        if self._restart is None or not isinstance(self._inf, ZlibInflater):
            return False
        tail = self._inf.unused_data
        if not tail.strip(b"\x00") and self._left > 0:
            self._fh.seek(self._pos)
            more = self._fh.read(min(self.CHUNK, self._left))
            self._pos += len(more)
            self._left -= len(more)
            tail += more
        if not tail.strip(b"\x00"):
            return False  # end, or only zero padding (which GzipFile also skips)
        self._inf = self._restart()
        self._carry = tail
        return True

    @property
    def trailing(self) -> int:
        """Bytes left after the end of the (last) stream."""
        unused = getattr(self._inf, "unused_data", None)
        if unused is None:
            d = getattr(self._inf, "_d", None)
            unused = getattr(d, "unused_data", b"")
        if not self._inf.eof or not isinstance(unused, bytes):
            return 0
        return len(unused) + self._left

    def _feed(self, data: bytes, n: int) -> bytes:
        try:
            out = self._inf.feed(data, n)
        except ZipFormatError:
            raise  # already precise (an inflater's own bound)
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise ZipFormatError(f"corrupt compressed data: {exc}") from exc
        except Exception as exc:  # zstandard.ZstdError and friends
            raise ZipFormatError(f"corrupt compressed data: {exc}") from exc
        self.crc = zlib.crc32(out, self.crc)
        self.produced += len(out)
        return out

    def close(self) -> None:
        """The underlying file belongs to the caller."""
