"""Decompression bombs are findings, never crashes; mutated archives never break the scan."""

from __future__ import annotations

import io
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers._util import rules_of, scan_bytes
from corpus import containers as c
from mlwarden.report.model import Verdict
from mlwarden.scan.readers import archives

BIG = 200 << 20  # 200 MiB of zeros deflate to ~200 KB


@pytest.fixture(scope="module")
def kernel() -> bytes:
    return c.deflate_zeros(BIG)


def _bounded(data: bytes, name: str, **kw: object) -> tuple[list, float, int]:
    tracemalloc.start()
    t = time.perf_counter()
    res = scan_bytes(data, name, **kw)  # type: ignore[arg-type]
    took = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return res, took, peak


def test_single_member_bomb(kernel: bytes, pickles) -> None:
    data = c.build_zip([c.RawEntry("zeros.bin", b"", raw=kernel, size=BIG,
                                   crc=0)])
    res, took, peak = _bounded(data, "bomb.zip")
    assert "archive-bomb" in rules_of(res)
    assert took < 5 and peak < 48 << 20, (took, peak)


def test_member_that_lies_about_its_size(kernel: bytes, pickles) -> None:
    data = c.build_zip([c.RawEntry("zeros.bin", b"", raw=kernel, size=1000, crc=0)])
    res, took, peak = _bounded(data, "liar.zip")
    assert "archive-bomb" in rules_of(res)
    assert took < 10 and peak < 48 << 20, (took, peak)


def test_overlapping_entry_bomb(kernel: bytes, pickles) -> None:
    entries = [c.RawEntry("k0", b"", raw=kernel, size=BIG, crc=0)]
    entries += [c.RawEntry(f"k{i}", b"", raw=kernel, size=BIG, crc=0, offset=0)
                for i in range(1, 200)]
    res, took, peak = _bounded(c.build_zip(entries), "overlap.zip")
    assert {"zip-overlapping-members", "archive-bomb"} <= rules_of(res)
    assert took < 5 and peak < 48 << 20, (took, peak)
    # the rest of the tree is not expanded after the first bomb, with a reason
    assert "limit-exceeded" in rules_of(res)
    assert len(res) < 5


def test_gzip_bomb(pickles) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(1 << 20)
    data = b"".join(comp.compress(zero) for _ in range(200)) + comp.flush()
    res, took, peak = _bounded(data, "bomb.gz")
    assert "archive-bomb" in rules_of(res)
    assert res[0].verdict is not Verdict.CLEAN
    assert took < 10 and peak < 48 << 20, (took, peak)


def test_nested_42_style(monkeypatch: pytest.MonkeyPatch, pickles) -> None:
    """Zips of zips of zips whose leaves over-expand: the tree stops at the first bomb."""
    monkeypatch.setattr(archives, "RATIO_FLOOR", 1 << 20)
    leaf = c.build_zip([c.RawEntry(f"{i}.bin", b"", raw=c.deflate_zeros(8 << 20),
                                   size=8 << 20, crc=0) for i in range(8)])
    level = leaf
    for _ in range(4):
        level = c.zip_of({f"{i}.zip": level for i in range(8)})
    res, took, peak = _bounded(level, "42.zip")
    assert "archive-bomb" in rules_of(res)
    assert took < 5 and peak < 64 << 20, (took, peak)
    assert len(res) < 40


def test_7z_bomb(monkeypatch: pytest.MonkeyPatch, pickles) -> None:
    py7zr = pytest.importorskip("py7zr")
    monkeypatch.setattr(archives, "RATIO_FLOOR", 1 << 20)
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(bytes(16 << 20), "zeros.bin")
    res, took, _ = _bounded(buf.getvalue(), "bomb.7z")
    assert "archive-bomb" in rules_of(res)
    assert took < 10


def test_member_budget(pickles) -> None:
    from mlwarden.scan.context import Limits

    data = c.zip_of({f"{i}.txt": b"x" for i in range(50)})
    res = scan_bytes(data, "many.zip", Limits(max_members=10))
    assert "limit-exceeded" in rules_of(res)
    assert len(res) <= 11


# --------------------------------------------------------------------------- fuzz


def _seed_archives(tmp: Path) -> list[bytes]:
    torch_bytes = c.torch_zip(tmp / "m.pt").read_bytes()
    return [
        torch_bytes,
        c.zip_of({"a.pkl": c.benign_pickle(), "b/c.txt": b"hello"}),
        c.tar_of({"a.pkl": c.benign_pickle(), "x.txt": b"hi"}),
        zlib.compress(c.benign_pickle()),
    ]


_SEEDS: list[bytes] = []


def _seeds() -> list[bytes]:
    if not _SEEDS:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            _SEEDS.extend(_seed_archives(Path(d)))
    return _SEEDS


@settings(max_examples=150, deadline=3000,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which=st.integers(0, 3),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0.05, 1)))
def test_mutations_never_break_the_scan(which: int, edits: list[tuple[float, int]],
                                        cut: float | None) -> None:
    data = bytearray(_seeds()[which])
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        data = data[: int(len(data) * cut)]
    t = time.perf_counter()
    res = scan_bytes(bytes(data), "fuzz")
    assert time.perf_counter() - t < 2.5
    errors = [f for r in res for f in r.findings if f.rule == "internal-error"]
    assert not errors, errors
