"""Content that no model loader executes: identified, then left alone, with a reason."""

from __future__ import annotations

from mlwarden.report.model import Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import NOT_ANALYSED, ScanContext
from mlwarden.scan.source import Source

UNKNOWN_FORMAT = rule(
    "unknown-format",
    Verdict.UNSCANNABLE,
    Severity.LOW,
    "Binary content of no recognised format",
    "No analyser recognised these bytes, so nothing vouches for them. If a loader in "
    "your pipeline reads this file, identify its format before trusting it.",
)
NATIVE_CODE = rule(
    "native-code",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Native executable or shared library",
    "ELF, PE and Mach-O files run native code when loaded (custom ops, ctypes). A model "
    "repository rarely needs them; review where they come from.",
)


def read_empty(source: Source, ctx: ScanContext) -> None:
    ctx.format = "empty"


def read_inert(source: Source, ctx: ScanContext) -> None:
    ctx.report(NOT_ANALYSED, f"{ctx.format} content: inert data, not parsed further")


def read_native(source: Source, ctx: ScanContext) -> None:
    ctx.report(NATIVE_CODE, "native executable code (ELF/PE/Mach-O)")


def read_unknown(source: Source, ctx: ScanContext) -> None:
    from mlwarden.scan.formats.inert_formats import try_headerless

    with source.open() as fh:
        found = try_headerless(fh, source.size)
    if found is not None:
        ctx.format, summary = found
        ctx.report(NOT_ANALYSED, f"{summary}: inert data (the whole file follows the format)")
        return
    ctx.report(UNKNOWN_FORMAT, "content matches no known format; not analysed")


WALK_FAILED = rule(
    "format-does-not-account",
    Verdict.UNSCANNABLE,
    Severity.LOW,
    "The file starts like a known data format but does not follow it",
    "The format's structure was walked over the whole file and did not account for every "
    "byte (truncated, corrupt, or other content behind a familiar header).",
)


def read_walked(source: Source, ctx: ScanContext) -> None:
    """Formats whose whole structure is walked (MATLAB v5, IDL, word2vec, msgpack ...)."""
    from mlwarden.scan.formats.inert_formats import account

    with source.open() as fh:
        try:
            summary = account(ctx.format, fh, source.size)
        except ValueError as exc:
            ctx.report(WALK_FAILED, f"{ctx.format}: {exc}")
            return
    ctx.report(NOT_ANALYSED, f"{summary}: inert data")
