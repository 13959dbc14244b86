"""Read the names and strings out of a marshal blob without ``marshal.loads``.

``marshal.loads`` is documented as unsafe on hostile data (it can crash the interpreter), and
the code object it builds is exactly what we must not run. This reader walks the format
(CPython 3.8-3.13 code-object layouts), bounded in objects and depth, and returns every
string it holds: ``co_names``, constants, nested code objects' names."""

from __future__ import annotations

import struct

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
MAX_STRINGS = 20_000


class _Bad(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes, layout: str) -> None:
        self.d = data
        self.i = 0
        self.layout = layout  # "311" (3.11+) or "38" (3.8-3.10)
        self.refs: list[object] = []
        self.strings: list[str] = []
        self.count = 0

    def byte(self) -> int:
        if self.i >= len(self.d):
            raise _Bad
        self.i += 1
        return self.d[self.i - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.d):
            raise _Bad
        self.i += n
        return self.d[self.i - n : self.i]

    def i32(self) -> int:
        v: int = struct.unpack("<i", self.take(4))[0]
        return v

    def obj(self, depth: int = 0) -> object:
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_OBJECTS:
            raise _Bad
        code = self.byte()
        flag, t = code & 0x80, chr(code & 0x7F)
        slot = None
        if flag:
            slot = len(self.refs)
            self.refs.append(None)
        v = self._value(t, depth)
        if slot is not None:
            self.refs[slot] = v
        return v

    def _text(self, raw: bytes) -> str:
        s = raw.decode("utf-8", "surrogatepass")
        if len(self.strings) < MAX_STRINGS:
            self.strings.append(s)
        return s

    def _value(self, t: str, depth: int) -> object:
        if t in "0NFTS.":
            return None
        if t == "i":
            return self.i32()
        if t == "l":
            n = self.i32()
            self.take(2 * abs(n))
            return 0
        if t == "g":
            return self.take(8)
        if t == "y":
            return self.take(16)
        if t in "fx":
            self.take(self.byte())
            if t == "x":
                self.take(self.byte())
            return 0.0
        if t == "s":
            return self.take(self.i32())
        if t in "tuaA":
            return self._text(self.take(self.i32()))
        if t in "zZ":
            return self._text(self.take(self.byte()))
        if t in "([<>":
            n = self.i32()
            if n < 0 or n > len(self.d):
                raise _Bad
            return [self.obj(depth + 1) for _ in range(n)]
        if t == ")":
            return [self.obj(depth + 1) for _ in range(self.byte())]
        if t == "{":
            while True:
                if self.i < len(self.d) and self.d[self.i] == ord("0"):
                    self.i += 1
                    return {}
                self.obj(depth + 1)
                self.obj(depth + 1)
        if t == "r":
            n = self.i32()
            if not 0 <= n < len(self.refs):
                raise _Bad
            return self.refs[n]
        if t == "c":
            return self._code(depth)
        raise _Bad

    def _code(self, depth: int) -> object:
        ints = 5 if self.layout == "311" else 6
        for _ in range(ints):
            self.i32()
        fields = 10
        # 3.11+: code consts names localsplusnames localspluskinds filename name qualname
        #        firstlineno(i32) linetable exceptiontable
        # 3.8-3.10: code consts names varnames freevars cellvars filename name
        #        firstlineno(i32) lnotab
        before_lineno = 8
        for k in range(fields):
            if k == before_lineno:
                self.i32()
                continue
            self.obj(depth + 1)
        if self.layout == "311":
            self.obj(depth + 1)  # exceptiontable
        return None


def marshal_names(blob: bytes) -> set[str] | None:
    """Every string a marshalled object holds, or None when it does not parse completely
    under any supported layout."""
    for layout in ("311", "38"):
        r = _Reader(blob, layout)
        try:
            r.obj()
        except (_Bad, struct.error, UnicodeDecodeError, RecursionError):
            continue
        if r.i == len(blob):
            return set(r.strings)
    return None
