"""Helpers for the non-pickle format tests: scan a path, a byte string, or count bytes read."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwarden.report.model import FileResult, Location
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.engine import scan_source
from mlwarden.scan.source import Source


def scan_file(path: Path) -> FileResult:
    """Scan one file through the engine (sniffing included) and return its own result."""
    return scan_source(Source.from_file(path, str(path)), Limits())[0]


def scan_bytes(data: bytes, name: str = "blob") -> FileResult:
    return scan_source(Source.from_bytes(data, name), Limits())[0]


def rules_of(result: FileResult | ScanContext) -> set[str]:
    return {f.rule for f in result.findings}


def new_ctx() -> ScanContext:
    return ScanContext("test", Limits())


LOC = Location(detail="chat_template")


class _Counting(io.RawIOBase):
    def __init__(self, inner: Any, counter: list[int]) -> None:
        self.inner = inner
        self.counter = counter

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.inner.read(n)
        self.counter[0] += len(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, pos: int, whence: int = 0) -> int:
        return int(self.inner.seek(pos, whence))

    def tell(self) -> int:
        return int(self.inner.tell())

    def close(self) -> None:
        self.inner.close()
        super().close()


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts every byte readers pull through Source.open() / Source.head()."""
    counter = [0]
    original = Source.open

    def counting_open(self: Source) -> Any:
        return _Counting(original(self), counter)

    monkeypatch.setattr(Source, "open", counting_open)
    yield counter
