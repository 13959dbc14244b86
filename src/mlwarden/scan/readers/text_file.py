"""Text content: remote code, configs and chat templates are analysed; the rest is inert."""

from __future__ import annotations

from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.source import Source


def read_text(source: Source, ctx: ScanContext) -> None:
    ctx.report(NOT_ANALYSED, "text content: inert data, not parsed further")
