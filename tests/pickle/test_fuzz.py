"""Random mutations and truncations of valid pickles never crash the analyser, never run
past the opcode bound, and stay within a memory bound."""

from __future__ import annotations

import pickle
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.pickles import malicious_samples
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.pickle import scan_pickle

_SEEDS = [pickle.dumps({"a": [1, 2.5, "x" * 40, b"y", (None, True)], "b": {1, 2}},
                       protocol=p) for p in range(6)]
_SEEDS += list(malicious_samples("/nonexistent/MARKER").values())[:20]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif kind == 2:
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data = data[:pos]
    return bytes(data)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_never_crash(data: bytes) -> None:
    ctx = ScanContext("fuzz", Limits(max_pickle_ops=100_000))
    tracemalloc.start()
    try:
        scan_pickle(data, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024
    assert all(f.rule != "internal-error" for f in ctx.findings)


def test_huge_declared_lengths_do_not_allocate() -> None:
    for op in (b"B\xff\xff\xff\x7f", b"\x8e" + b"\xff" * 8, b"\x8d" + b"\xff" * 8,
               b"\x96" + b"\xff" * 8, b"\x8b\xff\xff\xff\x7f", b"T\xff\xff\xff\x7f"):
        ctx = ScanContext("x", Limits())
        tracemalloc.start()
        scan_pickle(b"\x80\x05" + op + b"abc", ctx)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 4 * 1024 * 1024
        assert any(f.rule == "pickle-broken-stream" for f in ctx.findings)


def test_deep_nesting_is_bounded() -> None:
    data = b"\x80\x02" + b"(" * 200_000 + b"N" + b"t" * 200_000 + b"."
    ctx = ScanContext("x", Limits())
    scan_pickle(data, ctx)  # must neither recurse nor crash
    data2 = b"\x80\x02N" + b"\x85" * 300_000 + b"."
    ctx2 = ScanContext("x", Limits())
    scan_pickle(data2, ctx2)
    assert ctx2.findings == []
