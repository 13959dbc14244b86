"""Helpers shared by the container tests."""

from __future__ import annotations

from typing import Any

from mlwarden.scan.context import Limits
from mlwarden.scan.engine import scan_source
from mlwarden.scan.source import Source


def scan_bytes(data: bytes, name: str = "sample", limits: Limits | None = None) -> list[Any]:
    return scan_source(Source.from_bytes(data, name), limits or Limits())


def rules_of(results: list[Any]) -> set[str]:
    return {f.rule for r in results for f in r.findings}
