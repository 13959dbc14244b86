"""Shared fixtures for the pickle analyser tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.report.model import Verdict
from mlwarden.scan.context import Limits, ScanContext
from mlwarden.scan.pickle import scan_pickle


@pytest.fixture
def marker(tmp_path: Path) -> str:
    return str(tmp_path / "MARKER")


@pytest.fixture
def scan_bytes() -> Callable[[bytes], ScanContext]:
    def run(data: bytes) -> ScanContext:
        ctx = ScanContext("sample", Limits())
        scan_pickle(data, ctx)
        return ctx
    return run


@pytest.fixture(scope="session")
def benign_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from corpus.pickles import write_benign

    return write_benign(tmp_path_factory.mktemp("benign"))


def rules_of(ctx: ScanContext) -> set[str]:
    return {f.rule for f in ctx.findings}


def verdict(ctx: ScanContext) -> Verdict:
    return ctx.verdict
