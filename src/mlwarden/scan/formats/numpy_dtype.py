"""NumPy dtypes without numpy: does a dtype hold Python objects, and how many bytes is an item.

Two loaders depend on the answer and both run pickle when it is "objects":

- ``numpy.load`` reads the ``.npy`` header dict and builds the dtype with
  ``numpy.lib.format.descr_to_dtype(descr)``; ``dtype.hasobject`` means the data is a pickle.
  :func:`descr_info` follows ``descr_to_dtype`` branch by branch (strings, sub-array tuples,
  structured field lists, any other iterable such as a dict, which it iterates by key).
- joblib pickles ``numpy.dtype(typestr, align, copy)`` and sets its state with BUILD; the
  state's ``flags`` decide ``hasobject`` and, for flexible types (S, U, V), its ``elsize``
  decides ``itemsize`` (measured on numpy 2.x: ``dtype('O8')`` with flags 0 has
  ``hasobject`` False). :func:`pickled_dtype_info` models that.

Answers are exact or ``None`` ("unsure"); callers treat unsure as "could be objects" or as
unscannable, never as raw bytes to skip. Strings numpy of any supported version rejects
raise :class:`DtypeError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_DEPTH = 32
MAX_FIELDS = 10_000


class DtypeError(ValueError):
    """numpy would refuse this description (the load fails before any data is read)."""


@dataclass(frozen=True)
class DtypeInfo:
    itemsize: int | None  # None: not known exactly (platform-dependent, or unsure)
    has_object: bool | None  # None: unsure

    @property
    def maybe_object(self) -> bool:
        return self.has_object is not False


# Kind letter -> bytes, for one-letter type codes (numpy.sctypeDict single characters).
# l/L (C long) and g/G (long double) depend on the platform: None.
_CHAR_SIZE: dict[str, int | None] = {
    "?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": None, "L": None,
    "q": 8, "Q": 8, "n": 8, "N": 8, "p": 8, "P": 8, "e": 2, "f": 4, "d": 8, "g": None,
    "F": 8, "D": 16, "G": None, "O": 8, "M": 8, "m": 8, "S": 0, "a": 0, "U": 0, "V": 0,
    "c": 1,  # 'c' is S1
}
# Kind + size spellings: allowed sizes per kind ("f8", "i4", "c16", "b1", "O8" ...).
_KIND_SIZES: dict[str, frozenset[int]] = {
    "b": frozenset({1}), "i": frozenset({1, 2, 4, 8}), "u": frozenset({1, 2, 4, 8}),
    "f": frozenset({2, 4, 8, 10, 12, 16}), "c": frozenset({8, 16, 20, 24, 32}),
    "O": frozenset({4, 8}), "M": frozenset({8}), "m": frozenset({8}),
}
_FLEXIBLE = frozenset("SaUV")
# Type names numpy accepts (numpy 1.x and 2.x sctypeDict), with their item size; None
# when it depends on the platform or is flexible (sized by the header).
_NAMES: dict[str, int | None] = {
    "bool": 1, "bool_": 1, "bool8": 1, "b1": 1, "byte": 1, "ubyte": 1, "int8": 1, "uint8": 1,
    "short": 2, "ushort": 2, "int16": 2, "uint16": 2, "half": 2, "float16": 2,
    "intc": 4, "uintc": 4, "int32": 4, "uint32": 4, "single": 4, "float32": 4,
    "int64": 8, "uint64": 8, "longlong": 8, "ulonglong": 8, "double": 8, "float64": 8,
    "float": 8, "float_": 8, "csingle": 8, "complex64": 8, "singlecomplex": 8,
    "cdouble": 16, "complex128": 16, "complex": 16, "complex_": 16, "cfloat": 16,
    "intp": 8, "uintp": 8, "int0": 8, "uint0": 8, "int": None, "int_": None, "long": None,
    "uint": None, "ulong": None, "longdouble": None, "longfloat": None, "float128": 16,
    "float96": 12, "clongdouble": None, "clongfloat": None, "longcomplex": None,
    "complex256": 32, "complex192": 24, "datetime64": 8, "timedelta64": 8,
    "str": 0, "str_": 0, "unicode": 0, "unicode_": 0, "str0": 0, "bytes": 0, "bytes_": 0,
    "string_": 0, "bytes0": 0, "void": 0, "void0": 0, "a": 0,
    "object": 8, "object_": 8, "object0": 8, "Object0": 8,
}
_OBJECT_NAMES = frozenset({"object", "object_", "object0", "Object0"})
_FLEXIBLE_NAMES = frozenset({"str", "str_", "unicode", "unicode_", "str0", "bytes", "bytes_",
                             "string_", "bytes0", "void", "void0", "a"})

# numpy/_core/_internal.py: the comma-string grammar ("i4,f8", "(2,3)f4", "2O").
_FORMAT_RE = re.compile(r"(?P<order1>[<>|=]?)"
                        r"(?P<repeats> *[(]?[ ,0-9]*[)]? *)"
                        r"(?P<order2>[<>|=]?)"
                        r"(?P<dtype>[A-Za-z0-9.?]*(?:\[[a-zA-Z0-9,.]+\])?)")
_SEP_RE = re.compile(r"\s*,\s*")
_SPACE_RE = re.compile(r"\s+$")
_DATETIME_RE = re.compile(r"^(?:[Mm]8|datetime64|timedelta64)(?:\[[A-Za-z0-9,/ ]*\])?$")
_KIND_SIZE_RE = re.compile(r"^([a-zA-Z?])(\d+)$")


def _is_commastring(s: str) -> bool:
    """numpy's ``_check_for_commastring``."""
    n = len(s)
    order = "<>|="
    if s[0].isdigit() or (n > 1 and s[0] in order and s[1].isdigit()):
        return True
    if (n > 1 and s[0] == "(" and s[1] == ")") or (
            n > 3 and s[0] in order and s[1] == "(" and s[2] == ")"):
        return True
    depth = 0
    for ch in s:
        if ch == "," and depth == 0:
            return True
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
    return s.startswith("(")


def dtype_from_string(s: str, depth: int = 0) -> DtypeInfo:
    """``numpy.dtype(s)`` for a string."""
    if depth > MAX_DEPTH:
        return DtypeInfo(None, None)
    if not s:
        raise DtypeError("empty data type string")
    if _is_commastring(s):
        return _commastring(s, depth)
    body = s[1:] if s[0] in "<>|=" else s
    if not body:
        raise DtypeError(f"data type {s!r} is only a byte order")
    if _DATETIME_RE.match(body):
        return DtypeInfo(8, False)
    if len(body) == 1 and body in _CHAR_SIZE:
        size = _CHAR_SIZE[body]
        if body in _FLEXIBLE:
            size = 0
        return DtypeInfo(size, body == "O")
    m = _KIND_SIZE_RE.match(body)
    if m is not None:
        kind, n = m.group(1), int(m.group(2))
        if kind in _FLEXIBLE:
            return DtypeInfo(n * 4 if kind == "U" else n, False)
        if kind in _KIND_SIZES and n in _KIND_SIZES[kind]:
            return DtypeInfo(8 if kind == "O" else n, kind == "O")
        if kind == "O":
            raise DtypeError(f"data type {s!r} not understood")
    if body in _NAMES:
        return DtypeInfo(_NAMES[body], body in _OBJECT_NAMES)
    if s in _NAMES:
        return DtypeInfo(_NAMES[s], s in _OBJECT_NAMES)
    # Anything else: no numpy version we model accepts it.
    raise DtypeError(f"data type {s!r} not understood")


def _commastring(s: str, depth: int) -> DtypeInfo:
    start, items = 0, []
    while start < len(s):
        mo = _FORMAT_RE.match(s, pos=start)
        if mo is None:
            raise DtypeError(f"format of {s!r} is not recognized")
        order1, repeats, order2, dt = mo.groups()
        start = mo.end()
        if start < len(s):
            if _SPACE_RE.match(s, pos=start):
                start = len(s)
            else:
                sep = _SEP_RE.match(s, pos=start)
                if sep is None:
                    raise DtypeError(f"format of {s!r} is not recognized")
                start = sep.end()
        if order1 and order2 and order1 != order2:
            raise DtypeError(f"inconsistent byte-order specification in {s!r}")
        if not dt and mo.end() == mo.start():
            raise DtypeError(f"format of {s!r} is not recognized")
        base = dtype_from_string((order1 or order2) + dt, depth + 1) if dt else None
        if base is None:
            raise DtypeError(f"format of {s!r} is not recognized")
        count = _repeat_count(repeats)
        size = None if base.itemsize is None or count is None else base.itemsize * count
        items.append(DtypeInfo(size, base.has_object))
    return _combine(items)


def _repeat_count(repeats: str) -> int | None:
    text = repeats.strip()
    if not text:
        return 1
    try:
        dims = [int(x) for x in text.strip("()").replace(" ", "").split(",") if x]
    except ValueError:
        return None
    n = 1
    for d in dims:
        n *= d
    return n


def _combine(items: list[DtypeInfo]) -> DtypeInfo:
    has: bool | None = False
    size: int | None = 0
    for it in items:
        if it.has_object:
            has = True
        elif it.has_object is None and has is False:
            has = None
        size = None if size is None or it.itemsize is None else size + it.itemsize
    return DtypeInfo(size, has)


def _shaped(base: DtypeInfo, shape: object) -> DtypeInfo:
    """``numpy.dtype((base, shape))``: a sub-array, or a flexible type given its size."""
    if isinstance(shape, bool) or not isinstance(shape, (int, tuple)):
        # numpy also accepts a fields dict here (a union view); object-ness stays the base's.
        return DtypeInfo(None, base.has_object)
    if isinstance(shape, int) and base.itemsize == 0:
        return DtypeInfo(None, base.has_object)  # ("U", 10): a sized flexible type
    dims = (shape,) if isinstance(shape, int) else shape
    n = 1
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise DtypeError(f"invalid sub-array shape {shape!r}")
        n *= d
    size = None if base.itemsize is None else base.itemsize * n
    return DtypeInfo(size, base.has_object)


def descr_info(descr: object, depth: int = 0) -> DtypeInfo:
    """``numpy.lib.format.descr_to_dtype(descr)`` for a value from ``ast.literal_eval``."""
    if depth > MAX_DEPTH:
        return DtypeInfo(None, None)
    if isinstance(descr, str):
        return dtype_from_string(descr, depth + 1)
    if isinstance(descr, tuple):
        if len(descr) < 2:
            raise DtypeError("sub-array description needs (dtype, shape)")
        return _shaped(descr_info(descr[0], depth + 1), descr[1])
    if isinstance(descr, (bool, int, float, complex)) or descr is None:
        raise DtypeError(f"descr of type {type(descr).__name__} is not a dtype")
    if isinstance(descr, bytes):
        raise DtypeError("descr fields of a bytes value are ints")
    if not isinstance(descr, Iterable):
        raise DtypeError("descr is not iterable")
    fields = list(descr)  # list, dict (its keys), set ...: whatever iteration yields
    if len(fields) > MAX_FIELDS:
        return DtypeInfo(None, None)
    items = []
    for field in fields:
        if not isinstance(field, Iterable) or isinstance(field, bytes):
            raise DtypeError("a structured field is not a sequence")
        parts = list(field)  # unpacking iterates: strings give characters, dicts keys
        if len(parts) == 2:
            items.append(descr_info(parts[1], depth + 1))
        elif len(parts) == 3:
            items.append(_shaped(descr_info(parts[1], depth + 1), parts[2]))
        else:
            raise DtypeError(f"a structured field has {len(parts)} parts")
    return _combine(items)


# ----------------------------------------------------------------- pickled dtypes

_HASOBJECT_FLAG = 0x01  # NPY_ITEM_REFCOUNT: what dtype.hasobject reports


def pickled_dtype_info(typestr: object, state: object) -> DtypeInfo:
    """``numpy.dtype(typestr, align, copy)`` followed by ``__setstate__(state)``.

    ``state`` is None when the pickle has no BUILD for the dtype. Unknown shapes of the
    state give an unsure answer rather than a guess.
    """
    if not isinstance(typestr, str):
        return DtypeInfo(None, None)
    try:
        base = dtype_from_string(typestr)
    except DtypeError:
        return DtypeInfo(None, None)
    if state is None:
        return base
    if not isinstance(state, tuple) or len(state) < 8 or not isinstance(state[7], int):
        return DtypeInfo(None, None)
    flags = state[7]
    has_object = bool(flags & _HASOBJECT_FLAG)
    # Object fields or sub-arrays that disagree with the flags: which one numpy believes
    # has changed between versions; do not guess.
    structural = base.has_object or _state_has_object(state)
    if structural is None or structural != has_object:
        return DtypeInfo(None, None)
    body = typestr.lstrip("<>|=")
    flexible = body[:1] in _FLEXIBLE or body in _FLEXIBLE_NAMES
    elsize = state[5]
    if flexible:
        if isinstance(elsize, bool) or not isinstance(elsize, int) or elsize < 0:
            return DtypeInfo(None, has_object)
        return DtypeInfo(elsize, has_object)
    return DtypeInfo(base.itemsize, has_object)


def _state_has_object(state: tuple[object, ...]) -> bool | None:
    """Object-ness of the sub-array (state[2]) and fields (state[4]) a state describes."""
    from mlwarden.scan.pickle.values import Call, SymDict

    found: bool | None = False
    sub = state[2]
    if sub is not None:
        base = sub[0] if isinstance(sub, tuple) and sub else None
        found = _value_has_object(base, Call)
    fields = state[4]
    if fields is None:
        return found
    if not isinstance(fields, SymDict):
        return None
    for _name, spec in fields.items[:MAX_FIELDS]:
        inner = spec[0] if isinstance(spec, tuple) and spec else None
        verdict = _value_has_object(inner, Call)
        if verdict is None:
            return None
        found = found or verdict
    return found


def _value_has_object(value: object, call_type: type) -> bool | None:
    """A pickled dtype inside a state: Call(numpy.dtype, (typestr, ...)) with its state."""
    if not isinstance(value, call_type):
        return None
    args = getattr(value, "args", None)
    if not isinstance(args, tuple) or not args:
        return None
    info = pickled_dtype_info(args[0], getattr(value, "state", None))
    return info.has_object
