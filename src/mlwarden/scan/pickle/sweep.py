"""Imports in bytes the interpreter did not reach: after a break, keep looking.

Where the stream breaks is where the scanner's model of the unpickler says CPython raises.
If that model is wrong anywhere (a number spelling, an argument form), CPython reads on,
so the rest of the bytes is swept for the two shapes an import takes: ``GLOBAL``/``INST``
lines, and two string opcodes (optionally memoised) followed by ``STACK_GLOBAL``. Names
must be dotted identifiers; the sweep is linear in the input (regular expressions) and
bounded by ``limit`` bytes.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Iterator

_ID = rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_IDENT = re.compile(_ID + rb"\Z")
_LINE_IMPORT = re.compile(rb"[ci](" + _ID + rb")\n(" + _ID + rb")\n")
# Starts of string opcodes whose text begins like an identifier.
_STRING_START = re.compile(rb"[\x8cU][\x01-\xff][A-Za-z_]|[XT][\x01-\xff]\x00\x00\x00[A-Za-z_]"
                           rb"|\x8d[\x01-\xff]\x00{7}[A-Za-z_]|V[^\n]{1,256}\n|S'[^\n]{1,512}'\n"
                           rb'|S"[^\n]{1,512}"\n', re.DOTALL)
_MEMO_OP = re.compile(rb"q[\x00-\xff]|r[\x00-\xff]{4}|\x94|p\d{1,9}\n", re.DOTALL)


def _string_at(data: bytes, pos: int) -> tuple[str, int] | None:
    """(text, end) of the string opcode at ``pos`` when its text is an identifier."""
    op = data[pos]
    try:
        if op in (0x8C, 0x55):
            n = data[pos + 1]
            raw, end = data[pos + 2:pos + 2 + n], pos + 2 + n
        elif op in (0x58, 0x54):
            n = struct.unpack_from("<I", data, pos + 1)[0]
            raw, end = data[pos + 5:pos + 5 + n], pos + 5 + n
        elif op == 0x8D:
            n = struct.unpack_from("<Q", data, pos + 1)[0]
            raw, end = data[pos + 9:pos + 9 + n], pos + 9 + n
        elif op == 0x56:
            nl = data.index(b"\n", pos)
            raw, end = data[pos + 1:nl].decode("raw-unicode-escape").encode(), nl + 1
        elif op == 0x53:
            nl = data.index(b"\n", pos)
            raw, end = codecs.escape_decode(data[pos + 2:nl - 1])[0], nl + 1
        else:
            return None
    except (IndexError, ValueError, struct.error, UnicodeError):
        return None
    if end > len(data) or not _IDENT.match(raw):
        return None
    return raw.decode("ascii"), end


def _skip_memo(data: bytes, pos: int) -> int:
    for _ in range(2):
        m = _MEMO_OP.match(data, pos)
        if m is None:
            break
        pos = m.end()
    return pos


def imports_in(data: bytes, start: int, limit: int) -> Iterator[tuple[str, str, int]]:
    """(module, name, offset) of every import shape in ``data[start:start + limit]``."""
    end = min(len(data), start + limit)
    window = data[:end]
    for m in _LINE_IMPORT.finditer(window, start):
        yield m.group(1).decode(), m.group(2).decode(), m.start()
    strings: dict[int, tuple[str, int]] = {}
    for m in _STRING_START.finditer(window, start):
        got = _string_at(window, m.start())
        if got is not None:
            strings[m.start()] = got
    for pos, (module, after) in strings.items():
        second = strings.get(_skip_memo(window, after))
        if second is None:
            continue
        name, after2 = second
        q = _skip_memo(window, after2)
        if q < end and window[q] == 0x93:
            yield module, name, pos
