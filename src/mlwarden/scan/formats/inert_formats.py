"""Data formats that no model loader deserialises into code, identified by structure.

Two kinds of recognisers:

- :func:`identify` looks at the first bytes: formats with a magic number and a header that
  can be checked there (RIFF/WAV, MATLAB v5, IDL save files, NetCDF, fastText, legacy ggml,
  DICOM, FITS, TIFF, SQLite, Parquet ...).
- :func:`account` walks a whole file and succeeds only when the format accounts for every
  byte: MATLAB v4 (no magic at all), PaddlePaddle LoDTensor parameter files, word2vec
  binaries, msgpack documents and the top-level elements of MATLAB v5 files.

A recognised inert file is clean; the engine still reads every non-pickle file as a pickle
from offset 0 (scan/shadow.py), so a magic number cannot hide a pickle from the loaders
that ignore it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import BinaryIO

# ----------------------------------------------------------------- head recognisers

_RIFF_FORMS = re.compile(rb"^[A-Za-z0-9 _]{4}$")
_WORD2VEC_HEADER = re.compile(rb"^\s*(\d{1,10})[ \t]+(\d{1,7})[ \t]*\r?\n")
_FASTTEXT_MAGIC = struct.pack("<i", 793712314)
_GGML_MAGICS = (b"lmgg", b"fmgg", b"tjgg", b"algg", b"ggml", b"ggmf", b"ggjt", b"ggla",
                b"nsgg")
_MAT5_TEXT = re.compile(rb"^MATLAB 5\.0 MAT-file")
_MAT73_TEXT = re.compile(rb"^MATLAB 7\.3 MAT-file")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def identify(head: bytes, size: int) -> tuple[str, str] | None:
    """(format, what it is) when the head identifies an inert data format."""
    for fn in _HEAD_RECOGNISERS:
        found = fn(head, size)
        if found is not None:
            return found
    return None


def _riff(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64") or len(head) < 12:
        return None
    form = head[8:12]
    if not _RIFF_FORMS.match(form):
        return None
    (declared,) = struct.unpack_from(">I" if head[:4] == b"RIFX" else "<I", head, 4)
    cut = " truncated" if head[:4] != b"RF64" and declared + 8 > size else ""
    return "riff", f"RIFF container ({form.decode().strip()}){cut}"


def _matlab5(head: bytes, size: int) -> tuple[str, str] | None:
    if len(head) < 128 or not _MAT5_TEXT.match(head) or head[126:128] not in (b"IM", b"MI"):
        return None
    return "matlab", "MATLAB 5/7 MAT-file"


def _idl(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:4] in (b"SR\x00\x04", b"SR\x00\x06") and size >= 16:
        return "idl-sav", "IDL save file"
    return None


def _netcdf(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05") and size >= 32:
        return "netcdf", "NetCDF classic file"
    return None


def _fasttext(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:4] == _FASTTEXT_MAGIC and len(head) >= 8:
        (version,) = struct.unpack_from("<i", head, 4)
        if 0 < version < 100:
            return "fasttext", f"fastText binary model (version {version})"
    return None


def _ggml(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:4] in _GGML_MAGICS and size >= 16:
        return "ggml", "legacy ggml model (pre-GGUF)"
    return None


def _simple(magic: bytes, fmt: str, what: str, offset: int = 0
            ) -> Callable[[bytes, int], tuple[str, str] | None]:
    def check(head: bytes, size: int) -> tuple[str, str] | None:
        return (fmt, what) if head[offset:offset + len(magic)] == magic else None
    return check


def _mp3(head: bytes, size: int) -> tuple[str, str] | None:
    if head[:3] == b"ID3" and len(head) >= 10 and head[3] < 10:
        return "audio", "MP3 audio (ID3)"
    return None


# Neuroimaging (what nibabel reads): NIfTI-1/2 and Analyze 7.5 headers, TrackVis and
# MRtrix streamlines, Siemens CSA headers, ECAT 7 PET images.
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00\r\n\x1a\n", b"ni2\x00\r\n\x1a\n")
_TCK_MAGIC = b"mrtrix tracks\n"
_CSA2_MAGIC = b"SV10\x04\x03\x02\x01"


def _nifti_endian(head: bytes) -> tuple[str, int] | None:
    """(byte order, header size) when the first int32 is NIfTI-1/Analyze's 348 or
    NIfTI-2's 540."""
    for e in ("<", ">"):
        if len(head) >= 4:
            (n,) = struct.unpack_from(e + "i", head, 0)
            if n in (348, 540):
                return e, n
    return None


def _neuro(head: bytes, size: int) -> tuple[str, str] | None:
    found = _nifti_endian(head)
    if found is not None and size >= found[1] and len(head) >= 352:
        n = found[1]
        if n == 540 and head[4:12] in _NIFTI2_MAGICS:
            return "nifti", "NIfTI-2 image"
        if n == 348 and head[344:348] in _NIFTI1_MAGICS:
            return "nifti", "NIfTI-1 image"
    elif found is not None and found[1] == 348 and size == 348:
        (ndim,) = struct.unpack_from(found[0] + "h", head, 40)
        if 1 <= ndim <= 7:
            return "nifti", "Analyze 7.5 header"
    if head[:6] == b"TRACK\x00" and len(head) >= 1000:
        return "trackvis", "TrackVis streamlines"
    if head.startswith(_TCK_MAGIC):
        return "mrtrix-tck", "MRtrix streamlines"
    if head.startswith(_CSA2_MAGIC):
        return "siemens-csa", "Siemens CSA header"
    return None


_HEAD_RECOGNISERS: list[Callable[[bytes, int], tuple[str, str] | None]] = [
    _riff, _matlab5, _idl, _netcdf, _fasttext, _ggml, _mp3, _neuro,
    _simple(b"DICM", "dicom", "DICOM medical image", 128),
    _simple(b"SIMPLE  =", "fits", "FITS astronomical data"),
    _simple(b"II*\x00", "image", "TIFF image"), _simple(b"MM\x00*", "image", "TIFF image"),
    _simple(b"II+\x00", "image", "BigTIFF image"), _simple(b"MM\x00+", "image", "BigTIFF image"),
    _simple(b"fLaC", "audio", "FLAC audio"), _simple(b"OggS", "audio", "Ogg media"),
    _simple(b"SQLite format 3\x00", "sqlite", "SQLite database"),
    _simple(b"PAR1", "parquet", "Apache Parquet"), _simple(b"ARROW1", "arrow", "Apache Arrow"),
    _simple(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2", "OLE2 compound document"),
    _simple(b"lCRF", "crfsuite", "CRFsuite model"),
    _simple(b"acsp", "icc-profile", "ICC colour profile", 36),
    _simple(b"<stata_dta>", "stata", "Stata dataset"),
    _simple(b"MATRIX7", "ecat", "ECAT 7 PET image"),
]

INERT_FORMATS = frozenset({
    "riff", "matlab", "matlab-v4", "idl-sav", "netcdf", "fasttext", "ggml", "word2vec",
    "paddle-params", "dicom", "fits", "audio", "sqlite", "parquet", "arrow", "ole2",
    "crfsuite", "icc-profile", "stata", "fortran-unformatted", "leveldb-table",
    "nifti", "trackvis", "mrtrix-tck", "siemens-csa", "ecat",
})


def hdf5_user_block(head: bytes) -> bool:
    """HDF5 with a user block (MATLAB 7.3 writes 512 bytes): the superblock signature sits
    at 512, 1024, 2048 ... (libhdf5 searches exactly those offsets)."""
    off = 512
    while off + 8 <= len(head):
        if head[off:off + 8] == HDF5_SIGNATURE:
            return True
        off *= 2
    return False


def word2vec_header(head: bytes) -> tuple[int, int, int] | None:
    """(words, dimensions, header length) of a word2vec binary's first line."""
    m = _WORD2VEC_HEADER.match(head)
    if m is None:
        return None
    words, dims = int(m.group(1)), int(m.group(2))
    if words <= 0 or dims <= 0:
        return None
    return words, dims, m.end()


# ----------------------------------------------------------------- whole-file walkers


class _Reader:
    """Windowed random access to a file-like object."""

    WINDOW = 1 << 16

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size
        self.base = 0
        self.buf = b""

    def read(self, off: int, n: int) -> bytes:
        if off < 0 or n < 0 or off + n > self.size:
            raise _NotIt(f"read of {n} bytes at {off} runs past the end")
        rel = off - self.base
        if rel >= 0 and rel + n <= len(self.buf):
            return self.buf[rel:rel + n]
        self.fh.seek(off)
        self.buf = self.fh.read(max(n, self.WINDOW))
        self.base = off
        if len(self.buf) < n:
            raise _NotIt("file shorter than its size")
        return self.buf[:n]


class _NotIt(Exception):
    pass


MAX_RECORDS = 5_000_000
# Formats guessed without a magic number walk at most this many records: content that
# is not theirs must not cost seconds.
MAX_GUESSED = 200_000
MAX_OBJECTS = 4_000_000  # msgpack objects walked


def account(fmt: str, fh: BinaryIO, size: int) -> str:
    """Walk the whole file as ``fmt``; a one-line summary, or ValueError with the reason."""
    r = _Reader(fh, size)
    try:
        return _WALKERS[fmt](r)
    except _NotIt as exc:
        raise ValueError(str(exc)) from None
    except (struct.error, IndexError, OverflowError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


_TABLE_MAGIC = struct.pack("<Q", 0xDB4775248B80FB57)  # LevelDB table footer (TF .index)


def try_headerless(fh: BinaryIO, size: int) -> tuple[str, str] | None:
    """Formats without a magic number, tried on content no head recogniser claimed."""
    if size >= 48:
        fh.seek(size - 8)
        if fh.read(8) == _TABLE_MAGIC:
            return "leveldb-table", "LevelDB table (a TensorFlow checkpoint index)"
    for fmt in ("paddle-params", "matlab-v4", "fortran-unformatted"):
        try:
            return fmt, account(fmt, fh, size)
        except ValueError:
            continue
    return None


def _mat5(r: _Reader) -> str:
    endian = "<" if r.read(126, 2) == b"IM" else ">"
    pos, count = 128, 0
    while pos < r.size:
        if r.size - pos < 8:
            if r.read(pos, r.size - pos).strip(b"\x00"):
                raise _NotIt(f"{r.size - pos} stray bytes at the end")
            break
        mtype, nbytes = struct.unpack(endian + "II", r.read(pos, 8))
        if mtype >> 16:  # small data element: 4 bytes of data inside the tag
            mtype &= 0xFFFF
            step = 8
        else:
            pad = 0 if mtype == 15 else (-nbytes) % 8
            step = 8 + nbytes + pad
        if not 1 <= mtype <= 18:
            raise _NotIt(f"data element type {mtype} at offset {pos}")
        if pos + step > r.size and not (mtype == 15 and pos + 8 + nbytes == r.size):
            raise _NotIt(f"data element at offset {pos} runs past the end")
        pos = min(pos + step, r.size)
        count += 1
        if count > MAX_RECORDS:
            raise _NotIt("too many data elements")
    return f"MATLAB 5/7 MAT-file, {count} top-level element(s)"


_MAT4_SIZES = {0: 8, 1: 4, 2: 4, 3: 2, 4: 2, 5: 1}


def _mat4(r: _Reader) -> str:
    errors = []
    for endian in ("<", ">"):
        try:
            return _mat4_walk(r, endian)
        except _NotIt as exc:
            errors.append(str(exc))
    raise _NotIt(errors[0])


def _mat4_walk(r: _Reader, endian: str) -> str:
    """Variables back to back: five int32 (MOPT, rows, cols, imagf, name length), the
    NUL-terminated name, then rows x cols elements (twice for complex)."""
    pos, count = 0, 0
    while pos < r.size:
        mopt, rows, cols, imagf, namelen = struct.unpack(endian + "iiiii", r.read(pos, 20))
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        if not (0 <= mopt < 5000 and m <= 4 and o == 0 and p in _MAT4_SIZES and t <= 2
                and imagf in (0, 1) and rows >= 0 and cols >= 0 and 1 < namelen <= 4096):
            raise _NotIt(f"no MATLAB v4 variable header at offset {pos}")
        name = r.read(pos + 20, namelen)
        if name[-1:] != b"\x00" or not name[:-1].isascii() or b"\x00" in name[:-1] \
                or not name[:-1].strip():
            raise _NotIt("variable name is not a NUL-terminated ASCII string")
        pos += 20 + namelen + rows * cols * _MAT4_SIZES[p] * (2 if imagf else 1)
        if pos > r.size:
            raise _NotIt("variable data runs past the end")
        count += 1
        if count > MAX_GUESSED:
            raise _NotIt("too many variables")
    if not count:
        raise _NotIt("empty")
    return f"MATLAB v4 MAT-file, {count} variable(s)"


def _fortran(r: _Reader) -> str:
    """Fortran sequential unformatted records (scipy.io.FortranFile): each record is its
    length, its bytes and its length again, as 4- or 8-byte integers."""
    errors = []
    for width, code in ((4, "<I"), (8, "<Q"), (4, ">I"), (8, ">Q")):
        pos, count = 0, 0
        try:
            while pos < r.size:
                (n,) = struct.unpack(code, r.read(pos, width))
                (m,) = struct.unpack(code, r.read(pos + width + n, width))
                if n != m or n == 0:
                    raise _NotIt("record markers disagree (or an empty record)")
                pos += 2 * width + n
                count += 1
                if count > MAX_GUESSED:
                    raise _NotIt("too many records")
            if count:
                return f"Fortran unformatted file, {count} record(s)"
        except _NotIt as exc:
            errors.append(str(exc))
    raise _NotIt(errors[0] if errors else "empty")


_IDL_RECTYPES = frozenset({0, 1, 2, 3, 6, 10, 12, 13, 14, 15, 16, 17, 19, 20})


def _idl_walk(r: _Reader) -> str:
    pos, count = 4, 0
    while True:
        rectype, lo, hi = struct.unpack(">iII", r.read(pos, 12))
        if rectype not in _IDL_RECTYPES:
            raise _NotIt(f"record type {rectype} at offset {pos}")
        count += 1
        if rectype == 6:  # END_MARKER
            return f"IDL save file, {count} record(s)"
        nxt = lo + (hi << 32)
        if nxt <= pos or nxt > r.size or count > MAX_RECORDS:
            raise _NotIt(f"record chain breaks at offset {pos}")
        pos = nxt


# PaddlePaddle VarType.Type -> bytes per element.
_PADDLE_SIZES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 19: 8, 20: 1, 21: 1, 22: 2,
                 23: 8, 24: 16, 32: 1, 33: 1}


def _paddle(r: _Reader) -> str:
    """Concatenated LoDTensors (paddle.static.save_vars / .pdiparams / one file a var):
    u32 version 0, u64 LoD levels, per level u64 bytes + offsets, u32 version 0, i32 size
    of a TensorDesc protobuf (data_type = 1, dims = 2), then the raw data."""
    pos, count = 0, 0
    while pos < r.size:
        version, levels = struct.unpack("<IQ", r.read(pos, 12))
        if version != 0 or levels > 8:
            raise _NotIt(f"not a LoDTensor at offset {pos}")
        pos += 12
        for _ in range(levels):
            (nbytes,) = struct.unpack("<Q", r.read(pos, 8))
            if nbytes % 8 or pos + 8 + nbytes > r.size:
                raise _NotIt("bad LoD level")
            pos += 8 + nbytes
        tversion, desc_len = struct.unpack("<Ii", r.read(pos, 8))
        if tversion != 0 or not 0 < desc_len <= 4096:
            raise _NotIt("bad tensor header")
        dtype, dims = _tensor_desc(r.read(pos + 8, desc_len))
        pos += 8 + desc_len
        elements = 1
        for d in dims:
            if d < 0:
                raise _NotIt("negative dimension")
            elements *= d
        pos += elements * _PADDLE_SIZES[dtype]
        if pos > r.size:
            raise _NotIt("tensor data runs past the end")
        count += 1
        if count > MAX_GUESSED:
            raise _NotIt("too many tensors")
    return f"PaddlePaddle parameters, {count} tensor(s)"


def _tensor_desc(desc: bytes) -> tuple[int, list[int]]:
    pos, dtype, dims = 0, None, []
    while pos < len(desc):
        key, pos = _varint(desc, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(desc, pos)
        elif field == 2 and wire == 0:
            v, pos = _varint(desc, pos)
            dims.append(v - (1 << 64) if v >= 1 << 63 else v)
        elif field == 2 and wire == 2:
            n, pos = _varint(desc, pos)
            end = pos + n
            while pos < end:
                v, pos = _varint(desc, pos)
                dims.append(v - (1 << 64) if v >= 1 << 63 else v)
        else:
            raise _NotIt("unexpected TensorDesc field")
    if dtype not in _PADDLE_SIZES:
        raise _NotIt("unknown tensor data type")
    return dtype, dims


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(buf) and shift < 70:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise _NotIt("bad varint")


def _word2vec(r: _Reader) -> str:
    """gensim's binary word2vec: "<words> <dims>\\n", then per word: the word, a space,
    dims float32 values, and an optional newline."""
    header = word2vec_header(r.read(0, min(r.size, 64)))
    if header is None:
        raise _NotIt("no word2vec header")
    words, dims, pos = header
    vector = 4 * dims
    for i in range(min(words, MAX_RECORDS + 1)):
        if i >= MAX_RECORDS:
            raise _NotIt("too many words")
        chunk = r.read(pos, min(r.size - pos, 1024))
        start = 1 if chunk[:1] == b"\n" else 0
        space = chunk.find(b" ", start)
        if space <= start:
            raise _NotIt(f"word {i} is not followed by a space")
        pos += space + 1 + vector
        if pos > r.size:
            raise _NotIt("vectors run past the end")
    rest = r.read(pos, r.size - pos) if r.size - pos <= 16 else b"x"
    if rest.strip(b"\n\r"):
        raise _NotIt(f"{r.size - pos} bytes after the last vector")
    return f"word2vec binary, {words} words of {dims} dimensions"


def _msgpack(r: _Reader) -> str:
    count = [0]
    end = _mp_skip(r, 0, count)
    if end != r.size:
        raise _NotIt(f"the msgpack document ends at {end} of {r.size} bytes")
    return f"msgpack document, {count[0]} objects"


_MP_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2,
             0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
_MP_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4}


def _mp_skip(r: _Reader, pos: int, count: list[int]) -> int:
    """Offset after the msgpack object at ``pos`` (containers iterated, payloads skipped)."""
    # An explicit stack of remaining element counts keeps wide documents off recursion.
    todo = [1]
    while todo:
        if todo[-1] == 0:
            todo.pop()
            continue
        todo[-1] -= 1
        count[0] += 1
        if count[0] > MAX_OBJECTS:
            raise _NotIt("too many msgpack objects")
        b = r.read(pos, 1)[0]
        pos += 1
        n = -1
        if b <= 0x7F or b >= 0xE0 or b in (0xC0, 0xC2, 0xC3):
            continue
        if 0xA0 <= b <= 0xBF:
            pos += b & 0x1F
        elif 0x80 <= b <= 0x8F:
            n = 2 * (b & 0x0F)
        elif 0x90 <= b <= 0x9F:
            n = b & 0x0F
        elif b in (0xDC, 0xDD, 0xDE, 0xDF):
            w = 2 if b in (0xDC, 0xDE) else 4
            n = int.from_bytes(r.read(pos, w), "big") * (2 if b >= 0xDE else 1)
            pos += w
        elif b in _MP_FIXED:
            pos += _MP_FIXED[b]
        elif b in _MP_SIZED:
            w = _MP_SIZED[b]
            length = int.from_bytes(r.read(pos, w), "big")
            pos += w + (1 if b in (0xC7, 0xC8, 0xC9) else 0) + length
        else:
            raise _NotIt(f"byte 0x{b:02x} at offset {pos - 1} is not msgpack")
        if pos > r.size:
            raise _NotIt("msgpack data runs past the end")
        if n > 0:
            if len(todo) > 64:
                raise _NotIt("msgpack nested too deeply")
            todo.append(n)
    return pos


def _nifti(r: _Reader) -> str:
    """Header, the extension area up to ``vox_offset``, then exactly the voxels (one-file
    NIfTI); a header file (``.hdr``) is the header plus optional extensions."""
    head = r.read(0, min(r.size, 560))
    found = _nifti_endian(head)
    if found is None:
        raise _NotIt("no NIfTI/Analyze header size")
    e, hsize = found
    if hsize == 348:
        dims = struct.unpack_from(e + "8h", head, 40)
        (bitpix,) = struct.unpack_from(e + "h", head, 72)
        (vox,) = struct.unpack_from(e + "f", head, 108)
        single = head[344:348] == b"n+1\x00"
    else:
        dims = struct.unpack_from(e + "8q", head, 16)
        (bitpix,) = struct.unpack_from(e + "h", head, 14)
        (vox,) = struct.unpack_from(e + "q", head, 168)
        single = head[4:8] == b"n+2\x00"
    ndim = dims[0]
    if not 1 <= ndim <= 7 or any(d < 0 for d in dims[1:ndim + 1]) or bitpix <= 0 \
            or bitpix % 8:
        raise _NotIt("implausible dimensions or bits per voxel")
    if not single:
        end = _nifti_extensions(r, hsize, r.size, e) if r.size > hsize else hsize
        if end != r.size:
            raise _NotIt(f"{r.size - end} bytes after the header")
        return f"NIfTI/Analyze header ({ndim}-D)"
    voxels = 1
    for d in dims[1:ndim + 1]:
        voxels *= d
    start = int(vox)
    if start != vox or start < hsize + 4 or start > r.size:
        raise _NotIt(f"voxel offset {vox} outside the file")
    if _nifti_extensions(r, hsize, start, e) != start:
        raise _NotIt("extensions do not end at the voxel offset")
    if start + voxels * bitpix // 8 != r.size:
        raise _NotIt("voxel data does not fill the file exactly")
    return f"NIfTI image ({ndim}-D, {voxels} voxels)"


def _nifti_extensions(r: _Reader, hsize: int, end: int, e: str) -> int:
    """Where the extension chain (after the 4-byte extender) ends; padding is allowed
    when the extender says there are none."""
    if end < hsize + 4:
        raise _NotIt("no room for the extender")
    if r.read(hsize, 1) == b"\x00":
        return end  # no extensions: the rest up to vox_offset is padding
    pos, count = hsize + 4, 0
    while pos < end:
        esize, _ecode = struct.unpack(e + "ii", r.read(pos, 8))
        if esize < 8 or pos + esize > end:
            raise _NotIt(f"extension at offset {pos} has size {esize}")
        pos += esize
        count += 1
        if count > MAX_GUESSED:
            raise _NotIt("too many extensions")
    return pos


def _trackvis(r: _Reader) -> str:
    """1000-byte header, then per streamline: int32 point count, the points (3 + scalars
    float32 each), the properties (float32)."""
    head = r.read(0, 1000)
    for e in ("<", ">"):
        if struct.unpack_from(e + "i", head, 996)[0] == 1000:
            break
    else:
        raise _NotIt("header size is not 1000")
    (scalars,) = struct.unpack_from(e + "h", head, 36)
    (props,) = struct.unpack_from(e + "h", head, 238)
    if scalars < 0 or props < 0:
        raise _NotIt("negative scalar or property count")
    pos, count = 1000, 0
    while pos < r.size:
        (points,) = struct.unpack(e + "i", r.read(pos, 4))
        if points < 0:
            raise _NotIt(f"negative point count at offset {pos}")
        pos += 4 + 4 * (points * (3 + scalars) + props)
        if pos > r.size:
            raise _NotIt("streamline runs past the end")
        count += 1
        if count > MAX_RECORDS:
            raise _NotIt("too many streamlines")
    return f"TrackVis streamlines ({count})"


_TCK_TYPES = {b"Float32LE": 4, b"Float32BE": 4, b"Float64LE": 8, b"Float64BE": 8}


def _tck(r: _Reader) -> str:
    """A text header ending in ``END``, whose ``file: . OFFSET`` says where the point
    triplets start; the rest is whole triplets of the declared float type."""
    head = r.read(0, min(r.size, 1 << 16))
    end = head.find(b"\nEND\n")
    if end < 0:
        raise _NotIt("header has no END line")
    text = head[:end]
    if not text.isascii() or any(c < 0x20 and c not in b"\t\r\n" for c in text):
        raise _NotIt("header is not text")
    fields = dict(line.split(b":", 1) for line in text.split(b"\n")[1:] if b":" in line)
    size = _TCK_TYPES.get(fields.get(b"datatype", b"").strip())
    where = fields.get(b"file", b"").split()
    if size is None or len(where) != 2 or where[0] != b"." or not where[1].isdigit():
        raise _NotIt("no datatype or data offset")
    offset = int(where[1])
    if offset < end + 5 or offset > r.size or (r.size - offset) % (3 * size):
        raise _NotIt("data is not whole point triplets from the declared offset")
    return f"MRtrix streamlines ({(r.size - offset) // (3 * size)} points)"


def _csa2(r: _Reader) -> str:
    """Siemens CSA2: magic, tag count, then tags (84 bytes) with their items (16 bytes
    and the value padded to 4 bytes), as nibabel.nicom.csareader reads them."""
    ntags, _unused = struct.unpack("<II", r.read(8, 8))
    if not 0 < ntags <= 1000:
        raise _NotIt(f"{ntags} tags")
    pos = 16
    for _ in range(ntags):
        nitems = struct.unpack_from("<i", r.read(pos, 84), 76)[0]
        if not 0 <= nitems <= 1000:
            raise _NotIt(f"{nitems} items at offset {pos}")
        pos += 84
        for _ in range(nitems):
            length = struct.unpack("<4i", r.read(pos, 16))[1]
            if length < 0:
                raise _NotIt(f"negative item length at offset {pos}")
            pos += 16 + length + (-length) % 4
            if pos > r.size:
                raise _NotIt("item runs past the end")
    if r.read(pos, r.size - pos).strip(b"\x00"):
        raise _NotIt(f"{r.size - pos} bytes after the last tag")
    return f"Siemens CSA header ({ntags} tags)"


_WALKERS: dict[str, Callable[[_Reader], str]] = {
    "matlab": _mat5, "matlab-v4": _mat4, "idl-sav": _idl_walk, "paddle-params": _paddle,
    "word2vec": _word2vec, "msgpack": _msgpack, "fortran-unformatted": _fortran,
    "nifti": _nifti, "trackvis": _trackvis, "mrtrix-tck": _tck, "siemens-csa": _csa2,
}
WALKED = frozenset(_WALKERS)
