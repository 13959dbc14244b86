"""Generated payload-carrying files of the non-pickle formats, for differential fuzzing.

Each case is a file some real loader may run a payload from (npy/npz headers of every
``descr`` shape, joblib dumps whose buffers, dtypes or compression are tampered with, old
joblib ZF files, magic numbers of other formats in front of a pickle, protocol 0 text that
breaks after a call, compressed streams) or a benign variant of one. The oracle
(tests/soundness/oracle.py) says what the loaders did; the scanner must say malicious
whenever one of them ran the payload.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass

MARKER = "mlw-oracle-marker"


@dataclass(frozen=True)
class Case:
    tags: tuple[str, ...]
    filename: str
    data: bytes

    @property
    def name(self) -> str:
        return "+".join(self.tags)


# ----------------------------------------------------------------- payloads


def payload(rng: random.Random, tags: list[str]) -> bytes:
    """A pickle stream that runs a command touching the oracle's marker."""
    cmd = f"touch {MARKER}"
    kind = rng.choice(("p0_system", "p2_system", "p4_stack", "p0_exec", "p0_inst"))
    tags.append(f"payload:{kind}")
    if kind == "p0_system":
        return f"cos\nsystem\n(S'{cmd}'\ntR.".encode()
    if kind == "p0_exec":
        return f"cbuiltins\nexec\n(S'open(\"{MARKER}\",\"w\")'\ntR.".encode()
    if kind == "p0_inst":
        return f"(S'{cmd}'\nios\nsystem\n.".encode()
    if kind == "p2_system":
        return b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(cmd)) + cmd.encode() \
            + b"\x85R."
    body = (b"\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(cmd)]) + cmd.encode()
            + b"\x85R.")
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


def _benign(rng: random.Random) -> bytes:
    return pickle.dumps({"w": [1.5, 2], "n": "x"}, protocol=rng.choice((0, 2, 4)))


# ----------------------------------------------------------------- npy / npz

_DESCRS_OBJECT = ["'|O'", "'O'", "'object'", "'(2,)O'", "'i4,O'", "('O', (2,))",
                  "[('a', '<i4'), ('b', '|O')]", "[('a', [('x', '|O')])]", "{'xO': 0}",
                  "[('a', '|O', (1,))]", "'>O8'"]
_DESCRS_PLAIN = ["'<f8'", "'<U3'", "[('a', '<i4'), ('b', '<f8', (2,))]", "('<f4', (2,))",
                 "'|b1'", "{'ab': 0}"]


def _npy_bytes(rng: random.Random, descr: str, data: bytes, tags: list[str]) -> bytes:
    version = rng.choice((1, 1, 2, 3))
    shape = rng.choice(("(1,)", "(2,)", "()", "(1L,)" if version < 3 else "(1,)", "(0,)"))
    tags.append(f"npy:v{version}:{'long' if 'L' in shape else 'int'}")
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    raw = header.encode("latin-1")
    pre = 10 if version == 1 else 12
    raw += b" " * ((-(pre + len(raw) + 1)) % 64) + b"\n"
    size = struct.pack("<H", len(raw)) if version == 1 else struct.pack("<I", len(raw))
    return b"\x93NUMPY" + bytes([version, 0]) + size + raw + data


def npy_case(rng: random.Random, tags: list[str]) -> tuple[str, bytes]:
    objects = rng.random() < 0.7
    descr = rng.choice(_DESCRS_OBJECT if objects else _DESCRS_PLAIN)
    tags.append(f"npy:{'object' if objects else 'plain'}")
    data = payload(rng, tags) if rng.random() < 0.85 else _benign(rng)
    blob = _npy_bytes(rng, descr, data, tags)
    if rng.random() < 0.3:
        tags.append("npz")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))) \
                as z:
            z.writestr("a.npy", _npy_bytes(rng, "'<f8'", b"\x00" * 8, []))
            z.writestr("b.npy", blob)
        return "arrays.npz", buf.getvalue()
    return "array.npy", blob


# ----------------------------------------------------------------- joblib

_JOBLIB_DTYPES = ["<f8", "<U5", "S3", "V6", "b1", "<M8[ns]", "<i2", "c8"]


def joblib_case(rng: random.Random, tags: list[str]) -> tuple[str, bytes]:
    import joblib
    import numpy as np

    dtype = rng.choice(_JOBLIB_DTYPES)
    arr = np.zeros(rng.choice((1, 3, 16)), dtype=dtype)
    buf = io.BytesIO()
    joblib.dump({"a": arr, "b": [1, 2]}, buf)
    data = bytearray(buf.getvalue())
    pay = payload(rng, tags)
    how = rng.choice(("buffer_is_payload", "elsize_shrunk", "append", "object_flag",
                      "benign", "compressed"))
    tags.append(f"joblib:{how}:{dtype}")
    raw = arr.tobytes()
    at = bytes(data).find(raw) if raw else -1
    if how == "buffer_is_payload" and at > 0 and len(pay) <= len(raw) + 64:
        # pickle.load reads the raw buffer as opcodes; joblib.load skips it.
        data[at:at + len(raw)] = pay.ljust(len(raw), b"N")[:max(len(raw), len(pay))]
    elif how == "elsize_shrunk" and at > 0:
        # A dtype state claiming a smaller elsize: joblib skips less, the payload runs.
        data[at:at] = pay
    elif how == "append":
        data += pay
    elif how == "object_flag":
        data = bytearray(bytes(data).replace(b"K\x00t", b"K?t", 1)) + pay
    elif how == "compressed":
        inner = bytes(data) + pay if rng.random() < 0.5 else pay
        kind = rng.choice(("gzip", "zlib", "bz2", "xz"))
        tags.append(f"joblib:{kind}")
        comp = {"gzip": gzip.compress, "zlib": zlib.compress, "bz2": bz2.compress,
                "xz": lzma.compress}[kind](inner)
        return f"model.joblib.{kind[:2]}", comp
    return "model.joblib", bytes(data)


def zfile_case(rng: random.Random, tags: list[str]) -> tuple[str, bytes]:
    inner = payload(rng, tags) if rng.random() < 0.8 else _benign(rng)
    pad = b" " if rng.random() < 0.3 else b""
    tags.append("zfile" + (":py27pad" if pad else ""))
    return "model.pkl", b"ZF" + f"{len(inner):#x}".ljust(19).encode() + pad + \
        zlib.compress(inner)


# ----------------------------------------------------------------- other formats' magic

# Prefixes that are runs of harmless opcodes (or whose first opcode consumes the magic).
_MAGICS = {
    "gif": b"GIF89a\x00\x00\x00", "gguf": b"GGUF\x03\x00\x00\x00",
    "riff": b"RIFF\x00\x00\x00\x00", "png": b"\x89PNG\r\n\x1a\n",
    "text": b"N0", "json_like": b"]0", "mark": b"(1", "tiff": b"II*\x00",
    "bmp": b"BM", "hdf5": b"\x89HDF\r\n\x1a\n", "idl": b"SR\x00\x04",
}


def magic_case(rng: random.Random, tags: list[str]) -> tuple[str, bytes]:
    name = rng.choice(sorted(_MAGICS))
    tags.append(f"magic:{name}")
    body = payload(rng, tags)
    if rng.random() < 0.3:
        body = body[:-1] + b"\x00 trailing prose that breaks the stream"
        tags.append("magic:broken_after")
    return rng.choice(("model.bin", "image.gif", "notes.txt", "x.wav", "x.mat")), \
        _MAGICS[name] + body


def text_case(rng: random.Random, tags: list[str]) -> tuple[str, bytes]:
    """Protocol 0 text that breaks right after its call, named like ordinary text."""
    body = payload(rng, [])
    tags.append("text:p0_broken")
    cut = body.rstrip(b".") + rng.choice((b"\n# comment", b" and prose", b"\x00", b"}"))
    if not cut[:1].isalpha() and cut[:1] not in (b"(", b"c"):
        cut = f"cos\nsystem\n(S'touch {MARKER}'\ntR".encode() + b" prose"
    return rng.choice(("README.txt", "config.yaml", "template.j2", "notes.md")), cut


def generate(rng: random.Random) -> Case:
    tags: list[str] = []
    kind = rng.choices(("npy", "joblib", "zfile", "magic", "text"), (30, 25, 10, 20, 15))[0]
    fn = {"npy": npy_case, "joblib": joblib_case, "zfile": zfile_case, "magic": magic_case,
          "text": text_case}[kind]
    filename, data = fn(rng, tags)
    return Case(tuple(tags), filename, data)
