"""The result table for piped output, drawn without importing rich.

Importing rich costs more than scanning a sharded checkpoint. Without colour (output
that is not a terminal, colour not forced) the table rich draws for ``render_table`` is
fully determined by the cell texts, their widths and the HEAVY_HEAD box, so it is written
here directly. Whenever the result could differ from rich's drawing this module declines
(returns None) and rich draws the table as before:

- rich could decide to colour, or measure differently: FORCE_COLOR, TTY_COMPATIBLE or
  UNICODE_VERSION set, Jupyter/IPython, IDLE, Windows, or a non-UTF output encoding;
- a cell's text could change under rich's emoji codes (``:name:`` patterns) or markup
  that is not escaped (``[`` in a path, format or title; finding messages and locations
  are escaped as render.py escapes them, and their text is worked out here exactly as
  rich.markup renders it), or holds characters whose width we do not know for sure
  (controls, combining marks, emoji and other symbols, Hangul jamo: see ``_char_width``);
- the table would not fit the console at its natural width (rich would wrap cells).

tests/perf/test_table_rows.py draws many generated reports both ways and compares bytes;
it also checks ``_char_width`` against rich's own width for every code point.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from typing import IO

from mlwarden.report.model import Finding, Report, Verdict

# render_table's console width for output that is not a terminal.
PIPE_WIDTH = 200
MAX_FINDINGS = 8  # per file; the rest is counted on a "… N more" line
HEADERS = ("verdict", "path", "format", "findings")
PATH_MIN_WIDTH_CAP = 120

# rich.box.HEAVY_HEAD, rich's default table box.
_TOP = ("┏", "━", "┳", "┓")
_HEAD = ("┃", "┃", "┃")
_HEAD_RULE = ("┡", "━", "╇", "┩")
_ROW = ("│", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")

# A superset of rich's emoji-code pattern ``:(\S*?)(-emoji|-text)?:``: two colons with
# no whitespace between. Whether rich would replace a match depends on its emoji table,
# so any match declines.
_EMOJI_CODE = re.compile(r":\S*:")

# General categories whose width is east-asian width (W/F: 2 cells, else 1) in rich's
# tables too. Marks, format characters, symbols (emoji), separators other than the
# ASCII space and unassigned code points are left to rich.
_PLAIN_CATEGORIES = frozenset(
    ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
     "Sc"))
_WIDTHS: dict[str, int | None] = {}


def _char_width(ch: str) -> int | None:
    """Cells taken by one printable non-ASCII character, or None when unsure."""
    width = _WIDTHS.get(ch, -1)
    if width != -1:
        return width
    cp = ord(ch)
    if (0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF or cp in (0x3164, 0xFFA0)
            or unicodedata.category(ch) not in _PLAIN_CATEGORIES):
        width = None  # Hangul medial/final jamo and fillers are zero-width in rich
    else:
        width = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    _WIDTHS[ch] = width
    return width


def cell_width(text: str) -> int | None:
    """Terminal cells of one line of text as rich measures it, or None when unsure."""
    if text.isascii():
        return len(text) if text.isprintable() else None
    total = 0
    for ch in text:
        if " " <= ch <= "~":
            total += 1
            continue
        w = _char_width(ch)
        if w is None:
            return None
        total += w
    return total


def colour_free(out: IO[str]) -> bool:
    """True when rich would certainly draw to ``out`` without colour at width 200, the
    way render_table sets up its console for output that is not a terminal."""
    if getattr(out, "isatty", lambda: False)():
        return False
    env = os.environ
    if "FORCE_COLOR" in env or "TTY_COMPATIBLE" in env or "UNICODE_VERSION" in env:
        return False
    if sys.platform == "win32" or hasattr(out, "rich_proxied_file"):
        return False
    import builtins

    if hasattr(builtins, "get_ipython"):  # rich's Jupyter detection
        return False
    if getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return False
    encoding = (getattr(out, "encoding", "utf-8") or "utf-8").lower()
    return encoding.startswith("utf")


def _inert(text: str) -> bool:
    """Text that rich's markup and emoji rendering leave unchanged."""
    return "[" not in text and _no_emoji(text)


def _no_emoji(text: str) -> bool:
    return ":" not in text or _EMOJI_CODE.search(text) is None


# rich.markup's tag pattern and the pattern rich.markup.escape escapes.
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPABLE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def escape(text: str) -> str:
    """rich.markup.escape: tag-like ``[...]`` gets a backslash (and backslashes before it
    are doubled); a trailing single backslash is doubled."""
    text = _ESCAPABLE.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        return text + "\\"
    return text


def markup_plain(markup: str, tags: int) -> str | None:
    """The text rich.markup.render makes of ``markup`` (styles dropped), or None unless it
    holds exactly ``tags`` real tags (ours; escaped user text adds none)."""
    if "[" not in markup:
        return markup if tags == 0 else None
    out: list[str] = []
    position = real = 0
    for m in _TAG.finditer(markup):
        start, end = m.span()
        if start > position:
            out.append(markup[position:start].replace("\\[", "["))
        escapes = m[2]
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            out.append("\\" * backslashes)
            if escaped:  # an escaped tag is literal text
                out.append(m[1][len(escapes):])
                position = end
                continue
        real += 1
        position = end
    if position < len(markup):
        out.append(markup[position:].replace("\\[", "["))
    return "".join(out) if real == tags else None


def _finding_markup(f: Finding, style: str) -> tuple[str, int]:
    """render.py's ``_finding_line`` (markup, number of tags in it)."""
    where = str(f.location) if f.location else ""
    loc = f" [dim]({escape(where)})[/]" if where else ""
    return f"[{style}]{f.rule}[/] {escape(f.message)}{loc}", 4 if where else 2


def _lines_width(cell: str) -> tuple[int, bool] | None:
    """(width, multi-line) of a cell as rich lays it out unwrapped, or None."""
    if "\n" not in cell:
        w = cell_width(cell)
        return None if w is None else (w, False)
    if cell.endswith("\n"):
        return None
    widest = 0
    for line in cell.split("\n"):
        w = cell_width(line)
        if w is None:
            return None
        widest = max(widest, w)
    return widest, True


def draw(report: Report, verbose: bool = False) -> str | None:
    """render_table's output for a console without colour, or None to let rich draw it."""
    from mlwarden.report.render import _VERDICT_STYLE, shown_files, summary_text

    files = shown_files(report, verbose)
    rows: list[tuple[str, ...]] = []
    for fr in files:
        shown = [f for f in fr.findings if verbose or f.verdict is not Verdict.CLEAN]
        # The findings cell is rendered as one piece of markup, as rich renders it.
        lines: list[str] = []
        tags = 0
        for f in shown[:MAX_FINDINGS]:
            if "[" in f.rule or "\\" in f.rule:
                return None
            markup, n = _finding_markup(f, _VERDICT_STYLE[f.verdict])
            lines.append(markup)
            tags += n
        cell = "\n".join(lines)
        if len(shown) > MAX_FINDINGS:
            cell += f"\n… {len(shown) - MAX_FINDINGS} more"
        findings = markup_plain(cell, tags)
        if findings is None or not _no_emoji(findings):
            return None
        if not (_inert(fr.path) and _inert(fr.format)):
            return None
        rows.append((fr.verdict.value, fr.path, fr.format, findings))

    widths = [len(h) for h in HEADERS]
    widths[1] = max(widths[1], min(max((len(f.path) for f in files), default=4),
                                   PATH_MIN_WIDTH_CAP))
    multiline: list[bool] = []
    for row in rows:
        multi = False
        for i, cell in enumerate(row):
            measured = _lines_width(cell)
            if measured is None:
                return None
            w, m = measured
            multi = multi or m
            if w > widths[i]:
                widths[i] = w
        multiline.append(multi)
    # One space of padding either side of each cell, plus the vertical rules.
    table_width = sum(widths) + 3 * len(widths) + 1
    if table_width > PIPE_WIDTH:
        return None  # rich would shrink columns and wrap cells

    title = f"mlwarden {report.command}"
    title_width = cell_width(title)
    if (title_width is None or not _inert(title) or title != title.strip()
            or title_width > table_width):
        return None
    summary = summary_text(report, verbose)
    if cell_width(summary) is None or len(summary) > PIPE_WIDTH:
        return None
    if not rows:
        return summary + "\n"

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row_line(texts: tuple[str, ...] | list[str], left: str, mid: str, right: str) -> str:
        parts = []
        for t, w in zip(texts, widths, strict=True):
            tw = cell_width(t)
            assert tw is not None
            parts.append(" " + t + " " * (w - tw + 1))
        return left + mid.join(parts) + right

    left_pad = (table_width - title_width) // 2
    out = [" " * left_pad + title + " " * (table_width - title_width - left_pad),
           rule(*_TOP), row_line(HEADERS, *_HEAD), rule(*_HEAD_RULE)]
    for row, multi in zip(rows, multiline, strict=True):
        if not multi:
            out.append(row_line(row, *_ROW))
            continue
        split = [cell.split("\n") for cell in row]
        for n in range(max(len(s) for s in split)):  # cells align to the top
            out.append(row_line([s[n] if n < len(s) else "" for s in split], *_ROW))
    out.append(rule(*_BOTTOM))
    out.append(summary)
    out.append("")
    return "\n".join(out)
