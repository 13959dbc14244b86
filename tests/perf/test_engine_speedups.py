"""Speed-ups in the engine, sniffing and the pickle machine keep results unchanged."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import pytest

from mlwarden.report.model import Report
from mlwarden.scan import engine, sniff
from mlwarden.scan.engine import ScanOptions, scan_paths


class _Payload:
    """Harmless: loading it would only touch a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(self.marker),))


def _corpus(root: Path, n: int = 40) -> None:
    rng = random.Random(7)
    (root / "sub").mkdir()
    for i in range(n):
        d = root / ("sub" if i % 3 else "")
        obj: object = {f"k{j}": [rng.random() for _ in range(4)] for j in range(5)}
        (d / f"f{i:03d}.pkl").write_bytes(pickle.dumps(obj, protocol=i % 6))
    (root / "bad.pkl").write_bytes(pickle.dumps(_Payload(str(root / "marker")), protocol=2))
    (root / "notes.txt").write_text("hello\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "big.bin").write_bytes(b"\x00" * (engine.SMALL_FILE + 10))


def _summary(report: Report) -> list[tuple[object, ...]]:
    return [(f.path, f.format, f.verdict, f.size, f.sha256,
             tuple((x.rule, x.message) for x in f.findings)) for f in report.files]


def test_forked_scan_matches_serial(tmp_path: Path) -> None:
    _corpus(tmp_path)
    serial = scan_paths([str(tmp_path)], ScanOptions(workers=1))
    for workers in (2, 3):
        seen: list[tuple[int, int]] = []
        forked = scan_paths([str(tmp_path)], ScanOptions(workers=workers),
                            lambda d, t: seen.append((d, t)))
        assert _summary(forked) == _summary(serial)
        assert seen[-1] == (len(serial.files), len(serial.files))
    verdicts = {Path(f.path).name: f.verdict.value for f in serial.files}
    assert verdicts["bad.pkl"] == "malicious" and verdicts["f001.pkl"] == "clean"
    assert not (tmp_path / "marker").exists()


def test_failed_child_share_is_scanned_here(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _corpus(tmp_path, 12)
    serial = scan_paths([str(tmp_path)], ScanOptions(workers=1))
    parent = os.getpid()
    real_dumps = pickle.dumps

    def broken_dumps(*args: object, **kwargs: object) -> bytes:
        if os.getpid() != parent:
            raise RuntimeError("child cannot send")
        return real_dumps(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pickle, "dumps", broken_dumps)
    forked = scan_paths([str(tmp_path)], ScanOptions(workers=2))
    assert _summary(forked) == _summary(serial)


def test_small_file_read_once_matches_file(tmp_path: Path) -> None:
    p = tmp_path / "x.pkl"
    p.write_bytes(pickle.dumps(list(range(100))))
    t = engine.Target(p, str(p))
    src = engine._open_source(t)
    assert src.data == p.read_bytes() and src.size == p.stat().st_size
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x01" * (engine.SMALL_FILE + 1))
    src = engine._open_source(engine.Target(big, str(big)))
    assert src.data is None and src.size == engine.SMALL_FILE + 1


def _sniff_reference(head: bytes) -> str | None:
    for offset, magic, fmt in sniff._SIMPLE_MAGIC:
        if head[offset: offset + len(magic)] == magic:
            return str(fmt)
    return None


def test_magic_table_lookup_matches_linear_scan() -> None:
    rng = random.Random(3)
    heads = [magic + bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
             for _, magic, _ in sniff._SIMPLE_MAGIC]
    heads += [b"\x00\x00\x00\x00TFL3xx", b"PK\x03\x04TFL3", b"", b"P", b"7z"]
    heads += [bytes(rng.randrange(256) for _ in range(rng.randrange(16))) for _ in range(2000)]
    for head in heads:
        ref = _sniff_reference(head)
        if ref is not None:
            assert sniff.sniff(head, max(1, len(head))) == ref, head
    # Entries at other offsets must stay last for the first-byte table to be exact.
    offsets = [o for o, _, _ in sniff._SIMPLE_MAGIC]
    assert offsets == sorted(offsets, key=lambda o: o != 0)
