"""Parse untrusted Python within bounds: source size, token count, nesting. The tree is
never compiled to bytecode and nothing is imported or run."""

from __future__ import annotations

import ast
import gc
import io
import re
import tokenize
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

MiB = 1 << 20
# Real modeling files are below 1 MiB; the AST of a huge file costs ~20x its size.
MAX_PYTHON_BYTES = 16 * MiB
# The AST costs ~200 bytes per token: 8 MiB of "1 + 1 + ..." took 865 MiB and 6 s to parse
# (found by fuzzing). A 200 KiB modeling file has ~40k tokens; the bound is counted with
# a C-speed regex (an over-estimate: words inside strings count too) before parsing.
# kubernetes' generated core_v1_api.py counts ~1.01M (the count over-estimates): 2M is ~400 MiB.
MAX_PYTHON_TOKENS = 2_000_000
MAX_UNICODE_SCAN = 4 * MiB
_TOKENS = re.compile(rb"\w+|[^\w\s]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@dataclass(frozen=True)
class ParseProblem:
    kind: str  # "limit" (a bound was reached) | "syntax" (the source does not parse)
    message: str
    line: int = 1
    column: int | None = None


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector paused while syntax trees are built and analysed: trees are
    acyclic and kept until the analysis ends, yet their millions of nodes triggered full
    collections that took ~40% of a large package's time (sympy: 26 s -> 16 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse(data: bytes, filename: str, limit: int = MAX_PYTHON_BYTES
          ) -> ast.Module | ParseProblem:
    """The syntax tree within the analysis bounds, or why there is none."""
    limit = min(limit, MAX_PYTHON_BYTES)
    if len(data) > limit:
        return ParseProblem("limit", f"Python source of {len(data)} bytes exceeds the "
                            f"{limit}-byte analysis bound")
    tokens = count_tokens(data, MAX_PYTHON_TOKENS) if len(data) > MAX_PYTHON_TOKENS else 0
    if tokens > MAX_PYTHON_TOKENS:
        return ParseProblem("limit", f"Python source of about {tokens} tokens exceeds the "
                            f"{MAX_PYTHON_TOKENS}-token analysis bound")
    try:
        with no_gc():
            return ast.parse(data, filename=filename)
    except SyntaxError as exc:
        return ParseProblem("syntax", f"syntax error: {exc.msg}", exc.lineno or 1,
                            exc.offset or None)
    except (ValueError, RecursionError, MemoryError) as exc:
        return ParseProblem("syntax", f"cannot parse: {type(exc).__name__}: {exc}")


def count_tokens(data: bytes, bound: int) -> int:
    """Words and symbols, counted in 64 KiB slices (subn's pieces stay few) up to ``bound``."""
    n = 0
    for i in range(0, len(data), 1 << 16):
        n += _TOKENS.subn(b"", data[i : i + (1 << 16)])[1]
        if n > bound:
            break
    return n


def folded_identifiers(data: bytes) -> list[tuple[int, int, str, str]]:
    """(line, col, written, folded) for identifiers that Python's NFKC folding turns into
    another name (``ｅｘｅｃ`` is ``exec`` to the parser). Only run on non-ASCII source."""
    if data.isascii() or len(data) > MAX_UNICODE_SCAN:
        return []
    # Tokenizing is slow; most non-ASCII is prose (quotes, accents) that folds to non-ASCII.
    # A name folds to ASCII only if each of its non-ASCII characters does.
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        encoding = "utf-8"
    text = data.decode("utf-8", errors="replace")
    if encoding in ("utf-8", "utf-8-sig") and not any(
            unicodedata.normalize("NFKC", ch).isascii() for ch in set(_NON_ASCII.findall(text))):
        return []
    out: list[tuple[int, int, str, str]] = []
    try:
        for tok in tokenize.tokenize(io.BytesIO(data).readline):
            if tok.type == tokenize.NAME and not tok.string.isascii():
                folded = unicodedata.normalize("NFKC", tok.string)
                if folded != tok.string and folded.isascii():
                    out.append((tok.start[0], tok.start[1] + 1, tok.string, folded))
                    if len(out) >= 100:
                        break
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return out
