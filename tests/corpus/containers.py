"""Generated container corpus: torch zips, zip anomalies, bombs, tar/7z/compressed streams.

Every "malicious" payload here runs ``touch <marker>`` on a marker file in a temporary
directory, nothing else.
"""

from __future__ import annotations

import io
import os
import shlex
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path


class Payload:
    """Pickles as ``os.system("touch <marker>")``: harmless, and observable."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def torch_zip(path: Path, marker: Path | None = None, numel: int = 16) -> Path:
    """A real torch.save zip checkpoint; with ``marker``, data.pkl also holds a payload."""
    import torch

    obj: dict[str, object] = {"weight": torch.arange(float(numel)), "step": 3}
    if marker is not None:
        obj["extra"] = Payload(marker)
    torch.save(obj, path)
    return path


# --------------------------------------------------------------------------- zip surgery


def _cd_entries(data: bytes) -> list[int]:
    eocd = data.rfind(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", data, eocd + 16)
    (count,) = struct.unpack_from("<H", data, eocd + 10)
    out, p = [], cd_offset
    for _ in range(count):
        assert data[p : p + 4] == b"PK\x01\x02"
        out.append(p)
        nlen, xlen, clen = struct.unpack_from("<HHH", data, p + 28)
        p += 46 + nlen + xlen + clen
    return out


def mutate_zip(data: bytes, member_suffix: str, *, crc: bool = False, cd_flags: int = 0,
               lh_flags: int = 0, rename_local: bool = False) -> bytes:
    """Apply the published zip tricks to the members whose name ends with the suffix."""
    b = bytearray(data)
    hit = False
    for p in _cd_entries(data):
        nlen = struct.unpack_from("<H", b, p + 28)[0]
        name = bytes(b[p + 46 : p + 46 + nlen])
        off = struct.unpack_from("<I", b, p + 42)[0]
        if not name.endswith(member_suffix.encode()):
            continue
        hit = True
        if crc:  # both copies, as CVE-2025-10156 samples do
            struct.pack_into("<I", b, p + 16, 0xDEADBEEF)
            struct.pack_into("<I", b, off + 14, 0xDEADBEEF)
        if cd_flags:
            struct.pack_into("<H", b, p + 8, struct.unpack_from("<H", b, p + 8)[0] | cd_flags)
        if lh_flags:
            struct.pack_into("<H", b, off + 6, struct.unpack_from("<H", b, off + 6)[0] | lh_flags)
        if rename_local:  # same length, different name in the local header only
            b[off + 30 + nlen - 5] = ord("X")
    assert hit, member_suffix
    return bytes(b)


# --------------------------------------------------------------------------- raw zip builder


@dataclass
class RawEntry:
    name: str
    data: bytes  # uncompressed content (ignored when ``raw`` is given)
    method: int = 8
    raw: bytes | None = None  # precompressed bytes
    size: int | None = None  # declared uncompressed size (default: true size)
    crc: int | None = None
    local_name: str | None = None
    offset: int | None = None  # reuse another entry's local header
    extra: dict[str, int] = field(default_factory=dict)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflate_zeros(n: int, chunk: int = 1 << 20) -> bytes:
    """Raw deflate of ``n`` zero bytes without holding them in memory."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = bytearray()
    zero = bytes(chunk)
    left = n
    while left > 0:
        out += c.compress(zero[: min(chunk, left)])
        left -= chunk
    out += c.flush()
    return bytes(out)


def build_zip(entries: list[RawEntry], prefix: bytes = b"") -> bytes:
    """A zip written by hand, so every field can lie."""
    out = bytearray(prefix)
    cd = bytearray()
    offsets: list[int] = []
    for e in entries:
        comp = e.raw if e.raw is not None else (deflate(e.data) if e.method == 8 else e.data)
        crc = e.crc if e.crc is not None else zlib.crc32(e.data)
        size = e.size if e.size is not None else len(e.data)
        name = e.name.encode()
        if e.offset is not None:
            off = offsets[e.offset]
        else:
            off = len(out)
            lname = (e.local_name or e.name).encode()
            out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, e.method, 0, 0, crc,
                               len(comp), size, len(lname), 0)
            out += lname + comp
        offsets.append(off)
        cd += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, e.method, 0, 0,
                          crc, len(comp), size, len(name), 0, 0, 0, 0, 0, off)
        cd += name
    cd_off = len(out)
    out += cd
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd),
                       cd_off, 0)
    return bytes(out)


def zip_of(members: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        for ti in extra or []:
            t.addfile(ti)
    return buf.getvalue()


def payload_pickle(marker: Path, protocol: int = 2) -> bytes:
    import pickle

    return pickle.dumps({"ok": [1, 2, 3], "p": Payload(marker)}, protocol=protocol)


def benign_pickle(protocol: int = 2) -> bytes:
    import pickle

    return pickle.dumps({"lr": 0.1, "layers": [1, 2, 3], "name": "model"}, protocol=protocol)
