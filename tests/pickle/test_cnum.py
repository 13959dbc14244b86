"""Numbers of text opcodes are read exactly as CPython's unpicklers read them: the scanner
accepts a line whenever the C or the pure-Python unpickler does, with the same value.

The reference runs the real unpicklers on streams made only of a number opcode and STOP
(no GLOBAL, nothing can be imported or called)."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.scan.pickle import cnum

_ALPHABET = b"0123456789xXoObB_+- .\t\x00\x0b\re-LinfaNA9"


def _reference(stream: bytes) -> list[object]:
    out: list[object] = []
    for load in (pickle.loads, pickle._loads):  # type: ignore[attr-defined]
        try:
            out.append(load(stream))
        except Exception:
            out.append(None)
    return out


def _same(mine: object, c: object, py: object) -> bool:
    if (mine is None) != (c is None and py is None):
        return False
    expected = c if c is not None else py
    if isinstance(expected, float) and expected != expected:
        return isinstance(mine, float) and mine != mine
    return repr(mine) == repr(expected)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(list(_ALPHABET)), min_size=1, max_size=8).map(bytes))
def test_int_long_float_match_cpython(line: bytes) -> None:
    for op, parse in ((b"I", cnum.load_int), (b"L", cnum.load_long), (b"F", cnum.load_float)):
        c, py = _reference(op + line + b"\n.")
        assert _same(parse(line), c, py), (op, line, c, py)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(_ALPHABET)), min_size=1, max_size=6).map(bytes))
def test_memo_index_matches_cpython(line: bytes) -> None:
    accepted = [r is not None for r in _reference(b"S'a'\np" + line + b"\n.")]
    mine = cnum.load_index(line)
    assert (mine is not None and mine >= 0) == any(accepted), (line, accepted, mine)


def test_spellings_the_campaign_used() -> None:
    assert cnum.load_int(b"010") == 8  # strtol base 0: octal
    assert cnum.load_int(b"12\x00junk") == 12  # C string ends at NUL
    assert cnum.load_int(b"+0") is False and cnum.load_int(b"00") is False
    assert cnum.load_long(b"0x1fL") == 31 and cnum.load_long(b"5\x00x") == 5
    assert cnum.load_float(b"2.5\x00x") == 2.5 and cnum.load_float(b"1_0.5") == 10.5
    assert cnum.load_int(b"08") is None and cnum.load_long(b"010L") is None
