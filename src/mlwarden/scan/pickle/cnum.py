"""Numbers of the text opcodes (INT, LONG, FLOAT, GET, PUT) read as CPython reads them.

The C unpickler (``pickle.load``, torch, numpy) parses INT with ``strtol(s, &end, 0)``, so
``010`` is octal 8 and ``12\\0junk`` is 12, falling back to ``PyLong_FromString`` on the
C string (up to the first NUL); LONG, GET and PUT use ``PyLong_FromString`` on the C
string; FLOAT uses ``PyOS_string_to_double``, which takes no whitespace or underscores but
stops at a NUL. The pure-Python unpickler (joblib) uses ``int()``/``float()`` on the whole
line. A stream goes on wherever either accepts, so each function returns the value when
either unpickler accepts the line and None when both raise. ``line`` excludes its newline.
"""

from __future__ import annotations

import math
import re

_WS = b" \t\n\v\f\r"
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_FLOAT = re.compile(rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
                    re.IGNORECASE)


def _cstr(text: bytes) -> bytes:
    """The C string the unpicklers hand to libc: up to the first NUL."""
    i = text.find(b"\0")
    return text if i < 0 else text[:i]


def _pylong(cstr: bytes, base: int) -> int | None:
    """``PyLong_FromString(cstr, NULL, base)``: int() on the ASCII text (int() alone would
    also take non-ASCII digits and whitespace, which the C function rejects)."""
    if not cstr.isascii():
        return None
    try:
        return int(cstr.decode("ascii"), base)
    except ValueError:
        return None


def _strtol0(s: bytes) -> tuple[int, int, bool]:
    """C ``strtol(s, &end, 0)``: (value, end index, overflow); end is 0 without digits."""
    n = len(s)
    i = 0
    while i < n and s[i] in _WS:
        i += 1
    neg = i < n and s[i] == 0x2D
    if i < n and s[i] in b"+-":
        i += 1
    base = 10
    if i < n and s[i] == 0x30:
        if i + 2 < n + 0 and s[i + 1] in b"xX" and chr(s[i + 2]) in "0123456789abcdefABCDEF":
            base, i = 16, i + 2
        else:
            base = 8
    start = i
    valid = "0123456789abcdef"[:base]
    while i < n and chr(s[i]).lower() in valid:
        i += 1
    if i == start:
        return 0, 0, False
    digits = s[start:i].lstrip(b"0") or b"0"
    if len(digits) > 24:  # past any C long in every base; int() would refuse > 4300 digits
        return 0, i, True
    value = int(digits, base)
    value = -value if neg else value
    return value, i, not _LONG_MIN <= value <= _LONG_MAX


def load_int(line: bytes) -> int | bool | None:
    """INT: the value (False/True for a two-character 0/1, as CPython), or None."""
    if line.isdigit() and (line[0] != 0x30 or len(line) == 1) and len(line) < 19:
        return int(line)  # plain decimal: every reading agrees (the common case)
    if not line:
        return None
    s = _cstr(line + b"\n")
    value, end, overflow = _strtol0(s)
    if not overflow and (end == len(s) or s[end] == 0x0A):
        if len(line) == 2 and value in (0, 1):
            return bool(value)
        return value
    return _pylong(s, 0)


def load_long(line: bytes) -> int | None:
    """LONG: a trailing ``L`` is dropped (the C unpickler overwrites it with NUL)."""
    digits = line[:-1] if line.endswith(b"L") else line
    if digits.isdigit() and (digits[0] != 0x30 or len(digits) == 1) and len(digits) < 4000:
        return int(digits)
    if not line:
        return None
    return _pylong(_cstr(line[:-1] if line.endswith(b"L") else line), 0)


def load_index(line: bytes) -> int | None:
    """GET/PUT argument (base 10)."""
    if line.isdigit() and len(line) < 19:
        return int(line)
    if not line:
        return None
    return _pylong(_cstr(line), 10)


def load_float(line: bytes) -> float | None:
    # When the pure-Python unpickler accepts a line, the union accepts it with the same
    # value the C unpickler would give where it accepts too (one double parser).
    try:
        return float(line)
    except ValueError:
        pass
    if not line:
        return None
    s = _cstr(line + b"\n")
    m = _FLOAT.match(s)
    if m is not None and (m.end() == len(s) or s[m.end()] == 0x0A):
        value = float(m.group())
        literal_inf = b"inf" in m.group().lower()
        if not (math.isinf(value) and not literal_inf):  # C raises OverflowError
            return value
    return None
