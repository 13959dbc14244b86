"""Interface of the pickle analyser (placeholder implementation: replaced by the real
interpreter)."""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass

from mlwarden.report.model import Location, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext

_GLOBAL = rule("pickle-global", Verdict.SUSPICIOUS, Severity.MEDIUM, "Pickle imports a global")


@dataclass(frozen=True)
class PickleScanResult:
    end: int | None  # offset just past the last complete STOP, None if none completed
    count: int  # complete pickles analysed
    first_value: object | None = None  # first pickle's value when it is a plain constant


def scan_pickle(data: bytes | memoryview, ctx: ScanContext, *, member: str | None = None,
                start: int = 0, stacked: bool = True) -> PickleScanResult:
    """Analyse the pickle stream(s) starting at ``start``, reporting into ``ctx``."""
    stream = io.BytesIO(bytes(data))
    stream.seek(start)
    end = None
    count = 0
    try:
        for op, arg, pos in pickletools.genops(stream):
            if op.name == "GLOBAL":
                ctx.report(_GLOBAL, f"global {arg}", Location(member=member, offset=pos))
            if op.name == "STOP":
                end = stream.tell()
                count += 1
    except Exception as exc:
        ctx.unscannable(f"pickle parse error: {exc}", Location(member=member))
    return PickleScanResult(end, count)
