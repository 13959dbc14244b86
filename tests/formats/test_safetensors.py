"""safetensors: real files are clean; every malformed or hostile header shape is reported."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from formats.fmt_helpers import rules_of, scan_bytes, scan_file
from mlwarden.report.model import Verdict


def build(header: dict[str, object] | bytes, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    return struct.pack("<Q", n) + raw + data


def test_real_file_clean(tmp_path: Path) -> None:
    p = tmp_path / "model.safetensors"
    save_file({"w": np.ones((4, 3), np.float32), "b": np.zeros(3, np.int64),
               "e": np.zeros((0, 2), np.float16)}, str(p), metadata={"format": "np"})
    r = scan_file(p)
    assert r.format == "safetensors"
    assert r.verdict is Verdict.CLEAN, r.findings
    assert r.findings == ()


def test_torch_writer_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    p = tmp_path / "model.safetensors"
    save_torch({"a": torch.randn(2, 2, dtype=torch.bfloat16), "m": torch.ones(5, dtype=torch.bool)},
               str(p))
    assert scan_file(p).verdict is Verdict.CLEAN


def test_reads_header_only(tmp_path: Path, bytes_read: list[int]) -> None:
    """Scan cost is the header: a 48 MiB tensor file reads no tensor bytes."""
    small, big = tmp_path / "small.safetensors", tmp_path / "big.safetensors"
    save_file({"w": np.zeros(4, np.float32)}, str(small))
    save_file({"w": np.zeros(12 << 20, np.float32)}, str(big))
    assert scan_file(small).verdict is Verdict.CLEAN
    read_small = bytes_read[0]
    bytes_read[0] = 0
    assert scan_file(big).verdict is Verdict.CLEAN
    assert bytes_read[0] <= read_small + 8192 < 64 * 1024


T = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("header", "data", "reason"),
    [
        (b"{not json", b"", "not valid JSON"),
        ({"t": {**T, "dtype": "F99"}}, b"\0" * 8, "unknown dtype"),
        ({"t": {**T, "shape": [-1]}}, b"\0" * 8, "non-negative"),
        ({"t": {**T, "shape": [2.0]}}, b"\0" * 8, "non-negative"),
        ({"t": {**T, "data_offsets": [0, 12]}}, b"\0" * 12, "needs 8 bytes"),
        ({"t": {**T, "data_offsets": [8, 0]}}, b"\0" * 8, "after end"),
        ({"t": {**T, "data_offsets": [4, 12]}}, b"\0" * 12, "gap of 4 bytes"),
        ({"t": T}, b"\0" * 4, "truncated"),
        ({"t": {**T, "extra": 1}}, b"\0" * 8, "unknown fields"),
        ({"t": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "missing"),
        ({"__metadata__": {"a": 1}, "t": T}, b"\0" * 8, "strings to strings"),
        ({"t": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, b"\0", "whole bytes"),
        (b'{"t": NaN}', b"", "non-standard JSON"),
        (b'{"t": \xff}', b"", "not UTF-8"),
    ],
)
def test_malformed_is_unscannable_with_reason(header: object, data: bytes, reason: str) -> None:
    r = scan_bytes(build(header, data))  # type: ignore[arg-type]
    assert r.format == "safetensors"
    assert r.verdict is Verdict.UNSCANNABLE, r.findings
    assert rules_of(r) == {"safetensors-malformed"}
    assert reason in r.findings[0].message


def test_truncated_header_is_unscannable() -> None:
    data = build({"t": T}, b"\0" * 8)
    r = scan_bytes(data[:20] + b"\0" * 0, "cut")
    assert r.verdict is Verdict.UNSCANNABLE
    assert "past the end" in r.findings[0].message


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (build({"t": T}, b"\0" * 8, length=(1 << 40)), "format's"),
        (build({"a": T, "b": {**T, "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
        (build({"a": T, "b": T}, b"\0" * 8), "overlap"),
        (build({"t": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}},
               b"\0" * 8), "2**48"),
        (build({"t": {**T, "data_offsets": [0, 1 << 60]}}, b"\0" * 8), "2**48"),
    ],
)
def test_reader_exploits_are_malicious(blob: bytes, needle: str) -> None:
    r = scan_bytes(blob)
    assert r.format == "safetensors"
    assert r.verdict is Verdict.MALICIOUS, r.findings
    assert "safetensors-reader-exploit" in rules_of(r)
    assert any(needle in f.message for f in r.findings)


def test_duplicate_key_suspicious() -> None:
    raw = b'{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, ' \
          b'"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    r = scan_bytes(build(raw, b"\0" * 8))
    assert r.verdict is Verdict.SUSPICIOUS
    assert rules_of(r) == {"safetensors-duplicate-key"}


def test_trailing_bytes_suspicious() -> None:
    r = scan_bytes(build({"t": T}, b"\0" * 8 + b"PK\x05\x06" + b"\0" * 18))
    assert r.verdict is Verdict.SUSPICIOUS
    assert rules_of(r) == {"safetensors-trailing-bytes"}
