"""Interpreter semantics that must match CPython's unpickler."""

from __future__ import annotations

import pickle
import struct

import pytest

from corpus.pickles import _s4, call_stack_global
from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.knowledge import lookup
from mlwarden.scan.pickle import scan_pickle
from mlwarden.scan.pickle.machine import Break, Machine


def _run(data: bytes) -> Machine:
    m = Machine(data, 0, 10_000)
    m.run()
    return m


@pytest.mark.parametrize("proto", range(6))
def test_values_match_pickle(proto: int) -> None:
    obj = {"a": [1, 2.5, -3, 2**70, None, True], "b": ("x", b"y"), "c": "é"}
    m = _run(pickle.dumps(obj, protocol=proto))
    from mlwarden.scan.pickle.values import to_plain

    assert to_plain(m.value) == obj


def test_pop_on_empty_segment_pops_the_mark() -> None:
    # CPython's load_pop discards the MARK when nothing sits above it.
    m = _run(b"N(0.")
    assert m.value is None


def test_memo_missing_key_breaks() -> None:
    with pytest.raises(Break):
        _run(b"\x80\x02h\x05.")


def test_memoize_uses_memo_length() -> None:
    m = _run(b"\x80\x04" + _s4("a") + b"q\x05" + _s4("b") + b"\x94" + b"0h\x01.")
    assert m.value == "b"


def test_dotted_name_resolved_as_attribute_path() -> None:
    k = lookup("logging", "os.system")
    assert k.danger is not None
    assert lookup("torch.nn.modules.linear", "Linear").safe is not None
    assert lookup("torch.nn.modules.linear", "Linear.load_state_dict").safe is None


def test_submodule_prefix_matching() -> None:
    assert lookup("asyncio.unix_events", "_UnixSubprocessTransport._start").danger
    assert lookup("os.path", "join").danger  # os and every submodule
    assert lookup("torch._inductor.codecache", "compile_file").danger


def test_protocol0_fix_imports_mapping() -> None:
    m = _run(b"c__builtin__\nset\n((lp0\ntR.")
    assert m.globals[0].full == "builtins.set"


def test_getattr_on_module_resolves_to_target(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    data = (b"\x80\x04" + _s4("builtins") + _s4("getattr") + b"\x93" + _s4("collections")
            + _s4("OrderedDict") + b"\x93" + _s4("fromkeys") + b"\x86R.")
    ctx = scan_bytes(data)
    assert all("builtins.getattr" not in f.message for f in ctx.findings)
    assert any("collections.OrderedDict.fromkeys" in f.message for f in ctx.findings)


def test_joblib_alignment_padding_is_skipped() -> None:
    import io

    import joblib
    import numpy as np

    buf = io.BytesIO()
    joblib.dump([np.arange(7, dtype=np.int8), np.arange(3.0)], buf)
    ctx = ScanContext("x", Limits())
    res = scan_pickle(buf.getvalue(), ctx, joblib=True)
    assert res.count == 1 and res.joblib_arrays == 2 and ctx.findings == []


def test_frame_past_end_is_read_as_the_pure_python_unpickler_reads_it() -> None:
    # The C unpickler raises; joblib's pure-Python unpickler buffers what is there.
    m = _run(b"\x80\x04\x95" + struct.pack("<Q", 100) + b"N.")
    assert any(kind == "frame-short" for kind, _msg, _off in m.anomalies)
    with pytest.raises(Break):  # a read past the data still breaks
        _run(b"\x80\x04\x95" + struct.pack("<Q", 100) + b"N")


def test_opcode_budget_is_a_limit_finding() -> None:
    ctx = ScanContext("x", Limits(max_pickle_ops=100))
    scan_pickle(b"\x80\x04" + b"N0" * 200 + b"N.", ctx)
    assert ctx.verdict is Verdict.UNSCANNABLE
    assert any(f.rule == "limit-exceeded" for f in ctx.findings)


def test_stacked_pickles_all_scanned() -> None:
    data = pickle.dumps(1) + pickle.dumps(2) + call_stack_global("os", "system", "x")
    ctx = ScanContext("x", Limits())
    res = scan_pickle(data, ctx)
    assert res.count == 3 and ctx.verdict is Verdict.MALICIOUS


def test_trailing_raw_bytes_are_not_flagged() -> None:
    ctx = ScanContext("x", Limits())
    res = scan_pickle(pickle.dumps([1, 2]) + bytes(range(256)) * 4, ctx)
    assert res.count == 1 and ctx.verdict is Verdict.CLEAN


def test_nested_constant_pickle_is_scanned(scan_bytes) -> None:  # type: ignore[no-untyped-def]
    inner = pickle.dumps({"x": 1})
    ctx = scan_bytes(call_stack_global("pickle", "loads", inner))
    assert {"pickle-nested-pickle", "pickle-dangerous-callable"} <= {f.rule for f in ctx.findings}
