"""Grammar- and mutation-based generator of files that carry a pickle payload, for the
differential campaign (tools/fuzz_campaign.py --differential, tests/soundness).

Every case holds a payload whose only effect, if a real loader runs it, is touching the
oracle's marker in its cwd, a blocked process or connection attempt, or a blocked write.
The grammar varies what scanners model narrowly: how the callable is named (GLOBAL,
STACK_GLOBAL fed by every string opcode, memo indirection, INST, dotted paths, getattr,
names computed by calls, Python 2 names), how it is called (REDUCE, OBJ, INST, helpers that
call their argument, argument tuples built by calls), the stream around it (every protocol
with and without PROTO, frames, odd INT/LONG/FLOAT spellings CPython accepts, no-op runs,
stacked and broken streams), and the container (magic-byte prefixes that are valid opcodes,
npy/npz headers, joblib array wrappers and compressors, torch zip and legacy files).
Mutation then perturbs generated cases byte by byte and opcode by opcode.

``generate(rng) -> Case``: a pure function of the ``random.Random`` it is given.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

MARKER = "mlw-oracle-marker"


@dataclass(frozen=True)
class Case:
    tags: tuple[str, ...]  # the grammar choices made; deduplicates divergences by class
    filename: str
    data: bytes

    @property
    def name(self) -> str:
        return "+".join(self.tags)


# ---------------------------------------------------------------------- payloads
# (module, qualname, args): calling it touches the marker, or is a blocked effect.
PAYLOADS: tuple[tuple[str, str, tuple[object, ...]], ...] = (
    ("os", "system", (f"touch {MARKER}",)),
    ("posix", "system", (f"touch {MARKER}",)),
    ("subprocess", "call", (["touch", MARKER],)),
    ("builtins", "exec", (f"open({MARKER!r}, 'w').close()",)),
    ("builtins", "eval", (f"open({MARKER!r}, 'w')",)),
    ("builtins", "open", (MARKER, "w")),
    ("io", "open", (MARKER, "w")),
    ("codecs", "open", (MARKER, "w")),
    ("gzip", "open", (MARKER, "wb")),
    ("mailbox", "mbox", (MARKER,)),
    ("sqlite3", "connect", (MARKER,)),
    ("socket", "create_connection", (("192.0.2.1", 9),)),
    ("numpy.lib._npyio_impl", "savetxt", (MARKER, [1.0])),
    ("shutil", "copyfile", ("/etc/hostname", MARKER)),
    ("subprocess", "Popen", (["touch", MARKER],)),
)
# Objects that hold a module (for getattr and dotted paths): (module, attribute).
MODULE_HOLDERS = {"os": (("logging", "os"), ("torch", "os"), ("pickle", "os")),
                  "subprocess": (("asyncio.base_events", "subprocess"),),
                  "builtins": (("pickle", "__builtins__"),), "codecs": (("pickle", "codecs"),)}
_PY2_NAMES = {("builtins", "open"): ("__builtin__", "open"),
              ("builtins", "exec"): ("__builtin__", "exec"),
              ("builtins", "eval"): ("__builtin__", "eval")}


_ALIASES: dict[str, list[str]] | None = None


def _alias_for(module: str, name: str, rng: random.Random) -> tuple[str, str] | None:
    """A library spelling of ``module.name`` (the knowledge tables' re-export list), e.g.
    a numpy.distutils path that is subprocess.Popen."""
    global _ALIASES
    if _ALIASES is None:
        from mlwarden.scan.knowledge import libraries

        _ALIASES = {}
        for spelling, target in libraries._table()["aliases"].items():
            _ALIASES.setdefault(target, []).append(spelling)
        for v in _ALIASES.values():
            v.sort()
    cands = _ALIASES.get(f"{module}.{name}") or _ALIASES.get(f"{module}.{name}".replace(
        "posix.", "os."))
    if not cands:
        return None
    spelling = rng.choice(cands)
    mod, _, attr = spelling.rpartition(".")
    return mod, attr


# ---------------------------------------------------------------------- emitter


class Emitter:
    """Writes opcodes for a chosen protocol with randomised but CPython-valid encodings."""

    def __init__(self, rng: random.Random, proto: int, tags: list[str]) -> None:
        self.rng = rng
        self.proto = proto
        self.tags = tags
        self.out = bytearray()
        self.memo = 0  # next MEMOIZE index

    def tag(self, t: str) -> None:
        if t not in self.tags:
            self.tags.append(t)

    def raw(self, b: bytes) -> None:
        self.out += b

    # ---- scalars
    def string(self, s: str) -> None:
        r = self.rng
        raw = s.encode()
        kinds = ["short_binunicode", "binunicode", "binunicode8", "unicode", "string",
                 "binstring", "short_binstring", "unicode_escaped", "string_escaped"]
        k = r.choice(kinds)
        self.tag(f"str:{k}")
        if k == "short_binunicode" and len(raw) < 256:
            self.raw(b"\x8c" + bytes([len(raw)]) + raw)
        elif k == "binunicode8":
            self.raw(b"\x8d" + struct.pack("<Q", len(raw)) + raw)
        elif k == "unicode" and b"\n" not in raw and b"\\" not in raw:
            self.raw(b"V" + raw + b"\n")
        elif k == "unicode_escaped":
            self.raw(b"V" + "".join(f"\\u{ord(c):04x}" for c in s).encode() + b"\n")
        elif k == "string" and "'" not in s and "\\" not in s and "\n" not in s:
            q = r.choice((b"'", b'"'))
            self.raw(b"S" + q + raw + q + b"\n")
        elif k == "string_escaped":
            esc = "".join(r.choice((f"\\x{ord(c):02x}", f"\\{ord(c):03o}")) for c in s)
            self.raw(b"S'" + esc.encode() + b"'\n")
        elif k == "binstring":
            self.raw(b"T" + struct.pack("<i", len(raw)) + raw)
        elif k == "short_binstring" and len(raw) < 256:
            self.raw(b"U" + bytes([len(raw)]) + raw)
        else:
            self.raw(b"X" + struct.pack("<I", len(raw)) + raw)
        self.maybe_memo()

    def integer(self, n: int) -> None:
        r = self.rng
        forms: list[tuple[str, bytes]] = [("binint", b"J" + struct.pack("<i", n))
                                          if -2**31 <= n < 2**31 else ("long1", b"")]
        if 0 <= n < 256:
            forms.append(("binint1", b"K" + bytes([n])))
        if 0 <= n < 65536:
            forms.append(("binint2", b"M" + struct.pack("<H", n)))
        forms += [("int", b"I%d\n" % n), ("long", b"L%dL\n" % n), ("long_noL", b"L%d\n" % n)]
        if n > 0:
            forms += [("int_octal", b"I0%o\n" % n), ("int_hex", b"I0x%x\n" % n),
                      ("int_plus", b"I+%d\n" % n), ("int_space", b"I %d\n" % n),
                      ("int_nul", b"I%d\x00junk\n" % n), ("long_hex", b"L0x%xL\n" % n),
                      ("long_nul", b"L%d\x00x\n" % n), ("int_underscore",
                                                        b"I%s\n" % f"{n:_}".encode())]
        nbytes = (n.bit_length() + 8) // 8 or 1
        forms.append(("long1", b"\x8a" + bytes([nbytes]) + n.to_bytes(nbytes, "little",
                                                                      signed=True)))
        forms.append(("long4", b"\x8b" + struct.pack("<i", nbytes)
                      + n.to_bytes(nbytes, "little", signed=True)))
        name, code = r.choice([f for f in forms if f[1]])
        self.tag(f"int:{name}")
        self.raw(code)

    def value(self, v: object, depth: int = 0) -> None:
        """Push a plain value (str, int, float, bytes, list, tuple, dict, None, bool)."""
        r = self.rng
        if v is None:
            self.raw(b"N")
        elif v is True or v is False:
            self.raw(r.choice(((b"\x88" if v else b"\x89"), (b"I01\n" if v else b"I00\n"))))
        elif isinstance(v, int):
            self.integer(v)
        elif isinstance(v, float):
            self.raw(r.choice((b"G" + struct.pack(">d", v), b"F%r\n" % v)))
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, bytes):
            if len(v) < 256 and r.random() < 0.5:
                self.raw(b"C" + bytes([len(v)]) + v)
            else:
                self.raw(b"B" + struct.pack("<I", len(v)) + v)
        elif isinstance(v, tuple):
            self.tuple_of(list(v), depth)
        elif isinstance(v, list):
            self.raw(b"(")
            for x in v:
                self.value(x, depth + 1)
            self.raw(b"l")
        elif isinstance(v, dict):
            self.raw(b"}(")
            for k, x in v.items():
                self.value(k, depth + 1)
                self.value(x, depth + 1)
            self.raw(b"u")
        else:
            raise TypeError(type(v))

    def tuple_of(self, items: list[object], depth: int = 0,
                 push: Callable[[object], None] | None = None) -> None:
        put = push or (lambda x: self.value(x, depth + 1))
        r = self.rng
        if not items and r.random() < 0.7:
            self.raw(b")")
            return
        if 1 <= len(items) <= 3 and r.random() < 0.6:
            for x in items:
                put(x)
            self.raw(b"\x85\x86\x87"[len(items) - 1:len(items)])
            return
        self.raw(b"(")
        for x in items:
            put(x)
        self.raw(b"t")

    def maybe_memo(self) -> None:
        r = self.rng
        if r.random() < 0.25:
            k = r.choice(("binput", "long_binput", "put", "memoize"))
            self.tag(f"memo:{k}")
            i = self.memo
            self.memo += 1
            self.raw({"binput": b"q" + bytes([i % 256]),
                      "long_binput": b"r" + struct.pack("<I", i),
                      "put": b"p%d\n" % i, "memoize": b"\x94"}[k])

    def noop(self) -> None:
        """A run of opcodes that leaves the stack as it was."""
        r = self.rng
        k = r.choice(("none_pop", "mark_popmark", "int_pop", "dict_pop", "dup_pop",
                      "odd_int_pop", "float_pop", "frame_empty"))
        self.tag(f"noop:{k}")
        if k == "none_pop":
            self.raw(b"N0")
        elif k == "mark_popmark":
            self.raw(b"(N\x88" + b"1")
        elif k == "int_pop":
            self.integer(r.randrange(0, 100000))
            self.raw(b"0")
        elif k == "odd_int_pop":
            self.raw(r.choice((b"I010\n0", b"I0777\n0", b"I12\x00x\n0", b"I 5\n0",
                               b"L0x1fL\n0", b"L7\x00\n0", b"I+0\n0", b"I-0x10\n0")))
        elif k == "float_pop":
            self.raw(r.choice((b"F1.5\n0", b"Finf\n0", b"F-nan\n0", b"F2.5\x00x\n0",
                               b"G" + struct.pack(">d", 0.25) + b"0")))
        elif k == "dict_pop":
            self.raw(b"}0")
        elif k == "dup_pop":
            self.raw(b"N20" + b"0")
        else:
            self.raw(b"\x95" + struct.pack("<Q", 0))


# ---------------------------------------------------------------------- payload grammar


def _callable(e: Emitter, module: str, name: str) -> None:
    """Push the callable ``module.name`` by one of many routes."""
    r = e.rng
    routes = ["global", "stack_global", "stack_global", "getattr", "dotted", "py2",
              "computed_name", "memo_name"]
    route = r.choice(routes)
    if route == "py2" and (module, name) in _PY2_NAMES:
        m2, n2 = _PY2_NAMES[(module, name)]
        e.tag("name:py2")
        e.raw(b"c" + m2.encode() + b"\n" + n2.encode() + b"\n")
        return
    if route == "getattr" and module in MODULE_HOLDERS:
        holder_mod, holder_attr = r.choice(MODULE_HOLDERS[module])
        e.tag("name:getattr")
        _global(e, "builtins", "getattr")
        e.raw(b"(")
        _global(e, holder_mod, holder_attr)
        e.string(name)
        e.raw(b"tR")
        return
    if route == "dotted" and module in MODULE_HOLDERS:
        holder_mod, holder_attr = r.choice(MODULE_HOLDERS[module])
        e.tag("name:dotted")
        e.string(holder_mod)
        e.string(f"{holder_attr}.{name}")
        e.raw(b"\x93")
        return
    if route == "computed_name":
        # str(b'os', 'ascii') is a str: STACK_GLOBAL takes it as the module name.
        e.tag("name:computed")
        _global(e, "builtins", "str")
        e.raw(b"(")
        e.value(module.encode())
        e.string("ascii")
        e.raw(b"tR")
        e.string(name)
        e.raw(b"\x93")
        return
    if route == "memo_name":
        e.tag("name:memo")
        i = e.memo
        e.string(module)
        e.raw(b"q" + bytes([i % 256]))
        e.memo = max(e.memo, i + 1)
        e.string(name)
        e.raw(b"q" + bytes([(i + 1) % 256]) + b"00")
        e.memo = max(e.memo, i + 2)
        e.raw(b"h" + bytes([i % 256]) + b"h" + bytes([(i + 1) % 256]) + b"\x93")
        return
    if route == "global":
        _global(e, module, name)
        return
    e.tag("name:stack_global")
    e.string(module)
    e.string(name)
    e.raw(b"\x93")


def _global(e: Emitter, module: str, name: str) -> None:
    e.tag("name:global")
    e.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")
    e.maybe_memo()


def _call(e: Emitter, module: str, name: str, args: tuple[object, ...]) -> None:
    """Invoke ``module.name(*args)`` by one of many forms; leaves the result on the stack."""
    r = e.rng
    form = r.choice(("reduce", "reduce", "obj", "inst", "rebuild_helper", "staticmethod",
                     "computed_args", "reconstructor", "randomstate_ctor", "partial_call",
                     "partial_swap", "alias"))
    if form == "alias":
        spelling = _alias_for(module, name, r)
        if spelling is not None:
            e.tag("call:alias")
            amod, aname = spelling
            _callable(e, amod, aname)
            e.tuple_of(list(args))
            e.raw(b"R")
            return
        form = "reduce"
    if form == "randomstate_ctor" and len(args) == 1:
        # numpy's RandomState pickling helper calls its second argument with the first.
        e.tag("call:randomstate_ctor")
        _global(e, "numpy.random._pickle", "__randomstate_ctor")
        e.value(args[0])
        _callable(e, module, name)
        e.raw(b"\x86R")
        return
    if form == "partial_call":
        e.tag("call:partial")
        _global(e, "functools", "partial")
        e.raw(b"(")
        _callable(e, module, name)
        for a in args:
            e.value(a)
        e.raw(b"tR)R")
        return
    if form == "partial_swap":
        # partial(len) whose BUILD state swaps in the payload, then called.
        e.tag("call:partial_swap")
        _global(e, "functools", "partial")
        _global(e, "builtins", "len")
        e.raw(b"\x85R(")
        _callable(e, module, name)
        e.tuple_of(list(args))
        e.raw(b"}Ntb)R")
        return
    if form == "inst" and "." not in name:
        e.tag("call:inst")
        e.raw(b"(")
        for a in args:
            e.value(a)
        e.raw(b"i" + module.encode() + b"\n" + name.encode() + b"\n")
        return
    if form == "obj":
        e.tag("call:obj")
        e.raw(b"(")
        _callable(e, module, name)
        for a in args:
            e.value(a)
        e.raw(b"o")
        return
    if form == "rebuild_helper":
        # torch._tensor._rebuild_from_type_v2(func, new_type, args, state) calls func(*args)
        e.tag("call:rebuild_from_type_v2")
        _global(e, "torch._tensor", "_rebuild_from_type_v2")
        e.raw(b"(")
        _callable(e, module, name)
        _global(e, "torch", "Tensor")
        e.tuple_of(list(args))
        e.raw(b"}tR")
        return
    if form == "staticmethod":
        e.tag("call:staticmethod")
        _global(e, "builtins", "staticmethod")
        _callable(e, module, name)
        e.raw(b"\x85R")
        e.tuple_of(list(args))
        e.raw(b"R")
        return
    if form == "computed_args":
        # The argument tuple of an allowlisted helper built by a call, not a literal.
        e.tag("call:computed_args")
        _global(e, "torch._tensor", "_rebuild_from_type_v2")
        _global(e, "builtins", "tuple")
        e.raw(b"(")
        e.raw(b"(")
        _callable(e, module, name)
        _global(e, "torch", "Tensor")
        e.tuple_of(list(args))
        e.raw(b"}l")
        e.raw(b"tR")  # tuple([func, Tensor, args, {}])
        e.raw(b"R")
        return
    if form == "reconstructor" and module == "mailbox":
        # copyreg._reconstructor(cls, base, state) runs base.__init__(obj, state).
        e.tag("call:reconstructor")
        _global(e, "copyreg", "_reconstructor")
        e.raw(b"(")
        _callable(e, module, name)
        _callable(e, module, name)
        e.value(args[0])
        e.raw(b"tR")
        return
    e.tag("call:reduce")
    _callable(e, module, name)
    e.tuple_of(list(args))
    e.raw(b"R")


def pickle_stream(rng: random.Random, tags: list[str], *, proto: int | None = None,
                  payload: tuple[str, str, tuple[object, ...]] | None = None) -> bytes:
    """One pickle with the payload call somewhere inside ordinary-looking data."""
    if proto is None:
        proto = rng.choice((0, 1, 2, 3, 4, 5))
    e = Emitter(rng, proto, tags)
    with_proto = rng.random() < 0.75
    tags.append(f"proto:{proto}" if with_proto else f"noproto:{proto}")
    if with_proto:
        e.raw(b"\x80" + bytes([proto]))
    module, name, args = payload or rng.choice(PAYLOADS)
    tags.append(f"payload:{module}.{name}")
    framed = proto >= 4 and rng.random() < 0.5
    body = Emitter(rng, proto, tags)
    body.memo = e.memo
    for _ in range(rng.randrange(0, 3)):
        body.noop()
    shape = rng.choice(("top", "in_dict", "in_list", "popped", "build_state"))
    tags.append(f"shape:{shape}")
    if shape == "in_dict":
        body.raw(b"}(")
        body.value("weights")
        body.value([1.5, 2.5])
        body.value("cfg")
        _call(body, module, name, args)
        body.raw(b"u")
    elif shape == "in_list":
        body.raw(b"(")
        body.value(1)
        _call(body, module, name, args)
        body.raw(b"l")
    elif shape == "popped":
        _call(body, module, name, args)
        body.raw(b"0")
        body.value({"a": 1})
    elif shape == "build_state":
        body.raw(b"ccollections\nOrderedDict\n)R")
        _call(body, module, name, args)
        body.raw(b"0}b")
    else:
        _call(body, module, name, args)
    for _ in range(rng.randrange(0, 2)):
        body.noop()
    if framed:
        tags.append("framed")
        e.raw(b"\x95" + struct.pack("<Q", len(body.out) + 1) + bytes(body.out) + b".")
    else:
        e.raw(bytes(body.out) + b".")
    return bytes(e.out)


# ---------------------------------------------------------------------- containers


def _benign_pickle(rng: random.Random, proto: int) -> bytes:
    import collections

    obj = {"layer": [rng.random() for _ in range(4)], "od": collections.OrderedDict(a=1),
           "n": rng.randrange(1000), "s": "text" * rng.randrange(1, 4)}
    return pickle.dumps(obj, protocol=proto)


def _spliced(rng: random.Random, tags: list[str]) -> bytes:
    """A real pickle with the payload spliced in at an opcode boundary (call + POP)."""
    import pickletools

    proto = rng.choice((0, 1, 2, 3, 4, 5))
    base = _benign_pickle(rng, proto)
    ops = [pos for _op, _arg, pos in pickletools.genops(base)]
    # Inside a frame the insertion would break its length: take unframed protocols, or
    # splice before the first FRAME.
    cut_choices = [p for p in ops[1:-1] if proto < 4 or p < 11] or [ops[-1]]
    cut = rng.choice(cut_choices)
    e = Emitter(rng, proto, tags)
    module, name, args = rng.choice(PAYLOADS)
    tags += [f"splice:proto{proto}", f"payload:{module}.{name}"]
    _call(e, module, name, args)
    e.raw(b"0")
    return base[:cut] + bytes(e.out) + base[cut:]


def _magic_prefix(rng: random.Random, stream: bytes, tags: list[str]) -> bytes:
    """Magic bytes of other formats, glued so that they are valid opcodes before the
    payload (pickle.load starts at offset 0 whatever the bytes claim)."""
    kind = rng.choice(("gguf", "gif", "bmp", "tar_name", "text_comment"))
    tags.append(f"magic:{kind}")
    body = stream  # PROTO may appear anywhere: the C unpickler just sets the protocol
    if kind == "gguf":  # BINFLOAT eats 'GUF' + 4-byte version + 1 byte; POP
        return b"GGUF" + struct.pack("<I", 3) + b"\x00" + b"0" + body + b"\x00" * 64
    if kind == "gif":  # BINFLOAT eats 'IF89a' + width + 1 byte of height; POP
        return b"GIF89a" + b"\x01\x00\x01" + b"0" + body + b"\x00;"
    if kind == "bmp":  # BINBYTES with the size field as length; POP
        pad = 0x4D + (0x20 << 8)
        return b"BM" + b"\x20\x00\x00" + b"\x00" * pad + b"0" + body
    if kind == "tar_name":  # the pickle is the first member's name field
        if len(body) > 99:
            return body
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
            ti = tarfile.TarInfo("placeholder")
            ti.size = 4
            t.addfile(ti, io.BytesIO(b"data"))
        raw = bytearray(buf.getvalue())
        raw[0:100] = body + b"\x00" * (100 - len(body))
        chk = sum(raw[0:148]) + 8 * 32 + sum(raw[156:512])
        raw[148:156] = b"%06o\x00 " % chk
        return bytes(raw)
    return b"(V# generated configuration\n1" + body


def _npy(rng: random.Random, stream: bytes, tags: list[str]) -> tuple[str, bytes]:
    descr = rng.choice(("'|O'", "'O'", "[('a', '|O')]", "('|O', (2,))",
                        "{'names': ['x'], 'formats': ['O'], 'offsets': [0], 'itemsize': 8}",
                        "[('a', '<f8'), ('b', [('c', '|O')])]", "'O8'"))
    shape = rng.choice(("(1,)", "(2L,)", "()", "(1, 1)"))
    tags += [f"npy:descr={descr}", f"npy:shape={shape}"]
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}"
    version = rng.choice((1, 2, 3))
    hb = header.encode("latin1" if version < 3 else "utf8")
    lenfmt, prefix = ("<H", 10) if version == 1 else ("<I", 12)
    total = prefix + len(hb) + 1
    pad = (64 - total % 64) % 64
    hb = hb + b" " * pad + b"\n"
    data = b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(hb)) + hb + stream
    if rng.random() < 0.4:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))
                             ) as z:
            z.writestr("clean.npy", _plain_npy())
            z.writestr("arr_0.npy", data)
        tags.append("npz")
        return "arrays.npz", buf.getvalue()
    return "array.npy", data


def _plain_npy() -> bytes:
    hb = b"{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }"
    hb += b" " * (64 - (10 + len(hb) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hb)) + hb + struct.pack("<2q", 1, 2)


def _joblib(rng: random.Random, stream: bytes, tags: list[str]) -> tuple[str, bytes]:
    """joblib layout: NumpyArrayWrapper + BUILD, raw buffer, then the rest of the stream.
    The payload sits after the buffer (or in the object array's nested pickle)."""
    dtype = rng.choice(("<f8", "<i4", "|u1", "<U3", "|S5", "|b1", "<c16", "float64", "<M8[s]"))
    shape = rng.choice(((3,), (2, 2), (), (0,)))
    import numpy as np

    dt = np.dtype(dtype)
    count = 1
    for d in shape:
        count *= d
    align = rng.random() < 0.7
    tags += [f"joblib:dtype={dtype}", f"joblib:align={align}"]
    body = stream[2:-1] if stream[:1] == b"\x80" else stream[:-1]
    head = bytearray(b"\x80\x04(")
    head += (b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(")
    head += b"\x8c\x08subclass" + b"cnumpy\nndarray\n"
    head += b"\x8c\x05shape" + pickle.dumps(shape, protocol=2)[2:-1]
    head += b"\x8c\x05order\x8c\x01C"
    head += b"\x8c\x05dtype" + pickle.dumps(dt, protocol=2)[2:-1]
    head += b"\x8c\nallow_mmap\x89"
    if align:
        head += b"\x8c\x1bnumpy_array_alignment_bytesK\x10"
    head += b"ub"
    raw = b"\x00" * (count * dt.itemsize)
    if align:
        pos = len(head) + 1
        padlen = 16 - (pos % 16)
        raw = bytes([padlen]) + b"\xff" * padlen + raw
    data = bytes(head) + raw + body + b"t."
    comp = rng.choice((None, None, "zlib", "gzip", "bz2", "xz", "lzma"))
    tags.append(f"joblib:compress={comp}")
    if comp == "zlib":
        data = zlib.compress(data)
    elif comp == "gzip":
        data = gzip.compress(data)
    elif comp == "bz2":
        data = bz2.compress(data)
    elif comp == "xz":
        data = lzma.compress(data)
    elif comp == "lzma":
        data = lzma.compress(data, format=lzma.FORMAT_ALONE)
    return "model.joblib", data


def _torch_zip(rng: random.Random, stream: bytes, tags: list[str]) -> tuple[str, bytes]:
    prefix = rng.choice(("archive", "model", "x"))
    tags.append("torch:zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", stream)
        z.writestr(f"{prefix}/byteorder", b"little")
        z.writestr(f"{prefix}/version", b"3\n")
        z.writestr(f"{prefix}/.data/serialization_id", b"0" * 40)
    return "pytorch_model.bin", buf.getvalue()


def _torch_legacy(rng: random.Random, stream: bytes, tags: list[str]) -> tuple[str, bytes]:
    """Legacy torch: magic, protocol, sys_info, object, storage keys; payload in one."""
    at = rng.randrange(5)
    tags.append(f"torch:legacy@{at}")
    parts = [pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True,
                           "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
             pickle.dumps({"w": 1}, protocol=2), pickle.dumps([], protocol=2)]
    parts[at] = stream
    return "model.pt", b"".join(parts) + b"\x00" * 16


def _stacked_or_broken(rng: random.Random, stream: bytes, tags: list[str]) -> bytes:
    kind = rng.choice(("trailing_junk", "broken_after", "second_pickle"))
    tags.append(f"stream:{kind}")
    if kind == "trailing_junk":
        return stream + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if kind == "broken_after":
        return stream[:-1] + b"0" + rng.choice((b"\xff\xfe", b"h\xfa", b")R", b""))
    return stream + _benign_pickle(rng, 2)


def generate(rng: random.Random) -> Case:
    """One generated case (grammar), possibly mutated."""
    tags: list[str] = []
    if rng.random() < 0.25:
        stream = _spliced(rng, tags)
    else:
        stream = pickle_stream(rng, tags)
    filename = "model.pkl"
    kind = rng.choices(("plain", "stacked", "magic", "npy", "joblib", "torch_zip",
                        "torch_legacy"), (30, 10, 10, 12, 14, 8, 8))[0]
    if kind == "stacked":
        data = _stacked_or_broken(rng, stream, tags)
    elif kind == "magic":
        data = _magic_prefix(rng, stream, tags)
        filename = {"magic:gguf": "model.gguf", "magic:gif": "image.gif",
                    "magic:bmp": "image.bmp", "magic:tar_name": "bundle.tar",
                    "magic:text_comment": "notes.txt"}[tags[-1]]
    elif kind == "npy":
        filename, data = _npy(rng, stream, tags)
    elif kind == "joblib":
        filename, data = _joblib(rng, stream, tags)
    elif kind == "torch_zip":
        filename, data = _torch_zip(rng, stream, tags)
    elif kind == "torch_legacy":
        filename, data = _torch_legacy(rng, stream, tags)
    else:
        data = stream
    if rng.random() < 0.2:
        data = mutate_pickle(data, rng, tags)
    return Case(tuple(tags), filename, data)


# ---------------------------------------------------------------------- mutation

_EQUIV_NOOPS = (b"N0", b"(1", b"]0", b"\x880", b"I010\n0", b"L5\x00\n0")


def mutate_pickle(data: bytes, rng: random.Random, tags: list[str]) -> bytes:
    """Pickle-aware and byte-level mutations (the byte-level ones from fuzz.mutate)."""
    from fuzz import mutate

    k = rng.choice(("bytes", "noop_insert", "proto_byte", "frame_wrap", "truncate_tail"))
    tags.append(f"mut:{k}")
    buf = bytearray(data)
    if k == "bytes":
        out, how = mutate.mutate(data, rng)
        tags.append(f"mut:{how}")
        return out
    if k == "noop_insert" and len(buf) > 2:
        pos = rng.randrange(2, len(buf))
        buf[pos:pos] = rng.choice(_EQUIV_NOOPS)
    elif k == "proto_byte" and buf[:1] == b"\x80" and len(buf) > 1:
        buf[1] = rng.randrange(6)
    elif k == "frame_wrap" and len(buf) > 4:
        a = rng.randrange(2, len(buf))
        n = rng.randrange(0, len(buf) - a + 2)
        buf[a:a] = b"\x95" + struct.pack("<Q", n)
    elif len(buf) > 4:
        del buf[-rng.randrange(1, 4):]
    return bytes(buf)
