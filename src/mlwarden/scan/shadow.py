"""The pickle reading of a file that is not a pickle.

Sniffing picks one format, but loaders do not sniff the way we do: ``pickle.load``,
``torch.load`` (any file that is not a zip), ``joblib.load`` (any file without a compressor
magic) and ``numpy.load(allow_pickle=True)`` (any file without npy/zip magic) run the bytes
as pickle opcodes from offset 0, whatever magic a PNG, TFLite or GGUF header claims, and a
protocol 0 stream is plain text. So every file whose format is not a pickle is also read as
a pickle from offset 0, with the same interpreter as real pickles (CPython's unpickler, not
pickletools), and what that reading does before it breaks is reported.

Bounded: the reading starts on a 64 KiB probe and goes on (up to 64 MiB) only while the
stream is still going when the probe ends; ordinary content breaks within a few bytes, so
tensor bytes stay unread. A reading still going at the bound is unscannable.

Policy: breaking is what non-pickle content does, so breaks are not reported. A reading that
reaches a dangerous callable or calls anything outside the allowlist is reported with its
findings (malicious stays malicious); one that starts with a PROTO opcode and imports
anything is ``polyglot-pickle`` (suspicious); one that only references unknown names before
breaking, without calling them, is an info finding.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from mlwarden.report.model import Finding, Severity, Verdict
from mlwarden.report.rules import rule
from mlwarden.scan.context import ScanContext
from mlwarden.scan.source import Source

if TYPE_CHECKING:
    from mlwarden.scan.pickle.api import PickleScanResult

PROBE = 64 << 10
PREFIX = 64 << 20

# Bytes that are not a pickle opcode: CPython raises before executing anything.
_OPCODES = frozenset(b"(.0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}])\x80\x81\x82\x83\x84\x85"
                     b"\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95"
                     b"\x96\x97\x98BCGN")
# Rules that describe how the stream ends or malformed references, not what it does.
_ENDING = frozenset({"pickle-broken-stream", "pickle-trailing-data", "pickle-memo-anomaly",
                     "limit-exceeded"})
_INERT_READINGS = frozenset({"text", "unknown"})
# module.name as CPython's import system could resolve it; text that "imports" a CSV
# header line completes a pickle by accident and stays text.
_IDENTIFIERS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_TRUNCATION_WORDS = ("truncated", "exhausted", "past the end")

POLYGLOT_PICKLE = rule(
    "polyglot-pickle",
    Verdict.SUSPICIOUS,
    Severity.HIGH,
    "Content of another format that also runs as a pickle",
    "pickle.load, torch.load, joblib.load and numpy.load(allow_pickle=True) run a file's "
    "bytes as pickle opcodes from offset 0 whatever format its magic claims. This file's "
    "pickle reading imports or calls something before it breaks; its findings are "
    "reported here.",
)
PICKLE_READING = rule(
    "pickle-reading-references",
    Verdict.CLEAN,
    Severity.INFO,
    "Read as a pickle, the content only references names before breaking",
    "The bytes parse as a few pickle opcodes that import names (without calling them) "
    "before the stream breaks, as ordinary text sometimes does (a first line 'c...' reads "
    "as GLOBAL). Dangerous names and calls would be reported.",
)
SHADOW_LIMIT = rule(
    "pickle-reading-unbounded",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "The content runs as a pickle past the analysis bound",
    "Read as a pickle from offset 0, the stream neither stops nor breaks within the bound, "
    "so what a pickle loader would do with the rest is unknown.",
)


def starts_like_opcode(head: bytes) -> bool:
    """Whether a loader would execute anything: the first byte must be an opcode, and not
    PERSID ('P', which zips start with): pickle.load, joblib and numpy have no
    persistent_load and raise on it, torch reads a ``PK\\x03\\x04`` file as a zip and its
    first legacy pickle is loaded without persistent_load."""
    return bool(head) and head[0] in _OPCODES and head[0] != 0x50


def analyse(source: Source, ctx: ScanContext, head: bytes) -> None:
    """Read ``source`` as a pickle from offset 0 and report what that reading does."""
    if not starts_like_opcode(head):
        return
    from mlwarden.scan.pickle import scan_pickle

    unbounded = False
    with source.open() as fh:
        for limit in (PROBE, PREFIX):
            fh.seek(0)
            prefix = fh.read(min(source.size, limit))
            shadow = ScanContext(display_path=ctx.display_path, limits=ctx.limits,
                                 depth=ctx.depth)
            shadow.scan_nested = ctx.scan_nested
            result = scan_pickle(prefix, shadow, stacked=True, max_pickles=5, joblib=True)
            if result.joblib_arrays:
                # pickle.load reads the bytes joblib.load skips as opcodes: both readings.
                plain = scan_pickle(prefix, shadow, stacked=True, max_pickles=5, joblib=False)
                result = replace(result, globals=result.globals | plain.globals)
            whole = len(prefix) == source.size
            going = _ran_off(result.end, result.broken, shadow, len(prefix))
            if whole or not going:
                break
        else:
            unbounded = True
    if ctx.format in _INERT_READINGS and (result.count or unbounded) \
            and all(_IDENTIFIERS.fullmatch(g) for g in result.globals):
        if whole and not unbounded and _same_as_reader(result):
            _adopt(shadow, result, ctx)  # the pickle reader would repeat this analysis
        else:
            _judge_as_pickle(source, ctx)
        return
    if unbounded or any(f.rule == "limit-exceeded" and not _is_truncation(f)
                        for f in shadow.findings):
        ctx.report(SHADOW_LIMIT, f"read as a pickle, the first {PREFIX >> 20} MiB run without "
                   "stopping or breaking")
    if not result.globals:
        return
    found = [f for f in shadow.findings if f.verdict is not Verdict.CLEAN
             and f.rule not in _ENDING]
    names = ", ".join(sorted(result.globals)[:5])
    acts = [f for f in found if f.rule != "pickle-unknown-global"]
    if acts or head[:1] == b"\x80":
        ctx.report(POLYGLOT_PICKLE, f"read as a pickle from offset 0 it imports {names}")
        ctx.findings.extend(found)
        ctx.members.extend(shadow.members)
    else:
        ctx.report(PICKLE_READING, f"read as a pickle from offset 0 it references {names} "
                   "and breaks without calling anything")


def _same_as_reader(result: PickleScanResult) -> bool:
    """The reading already is what read_pickle_file does: the whole file, fewer pickles
    than the reading's bound, no joblib buffers, not a legacy torch file."""
    from mlwarden.scan.readers.pickle_file import TORCH_MAGIC

    return result.count < 5 and not result.joblib_arrays and result.first_value != TORCH_MAGIC


def _adopt(shadow: ScanContext, result: PickleScanResult, ctx: ScanContext) -> None:
    from mlwarden.scan.readers.pickle_file import file_format

    ctx.format = file_format(set(result.globals), False, 0)
    ctx.findings[:] = [f for f in ctx.findings if f.rule not in ("not-analysed",
                                                                 "unknown-format")]
    ctx.findings.extend(shadow.findings)
    ctx.members.extend(shadow.members)


def _judge_as_pickle(source: Source, ctx: ScanContext) -> None:
    """Text (or unknown bytes) whose pickle reading completes a pickle, or is still going
    after the probe: it is a pickle (protocol 0 is text; pickletools rejects streams that
    CPython loads), analysed by the pickle file reader."""
    from mlwarden.scan.readers.pickle_file import read_pickle_file

    sub = ScanContext(display_path=ctx.display_path, limits=ctx.limits, depth=ctx.depth)
    sub.scan_nested = ctx.scan_nested
    sub.format = "pickle"
    read_pickle_file(source, sub)
    ctx.format = sub.format
    ctx.findings[:] = [f for f in ctx.findings if f.rule not in ("not-analysed",
                                                                 "unknown-format")]
    ctx.findings.extend(sub.findings)
    ctx.members.extend(sub.members)


def _ran_off(end: int | None, broken: bool, shadow: ScanContext, size: int) -> bool:
    """The reading reached the end of the prefix still going (or wanting more bytes)."""
    if not broken:
        return end is None or end >= size
    return any(_is_truncation(f) for f in shadow.findings)


def _is_truncation(f: Finding) -> bool:
    return f.rule in ("pickle-broken-stream", "limit-exceeded") and any(
        w in f.message for w in _TRUNCATION_WORDS)
