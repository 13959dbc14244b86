"""Print a rich Table of many rows without paying rich's per-row cost.

rich lays out every cell of every row separately (padding, segments, cropping): a
1,000-file scan spent longer drawing its table than scanning. When the table fits the
console at its natural width no cell wraps, and then:

- a run of single-line rows draws exactly like one row whose cells hold those lines
  joined by newlines (same column widths, since the widest line decides; same padding; no
  separators between rows when ``show_lines`` is off), which rich draws far faster;
- without colour (piped output), the drawing is fully determined by the column widths and
  the box characters, so it is written directly, with rich's own box, markup and cell
  width functions.

Cells are converted to Text the way rich converts a str cell (markup, emoji, the
column's highlighting), so the output is byte-identical; anything else (tabs or control
characters, a table wider than the console, unusual table settings) takes rich's own
per-row path. tests/perf/test_table_rows.py compares the paths with rich's drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

# Fewer rows than this are not worth the bookkeeping.
MERGE_MIN_ROWS = 32


class _Plan:
    """Every row's cells as Text, which rows hold multi-line cells, and column widths."""

    def __init__(self, cells: list[list[Text]], multiline: list[bool], widths: list[int]):
        self.cells = cells
        self.multiline = multiline
        self.widths = widths  # content widths, without padding


def print_table(table: Table, console: Console, rows: Sequence[Sequence[str]]) -> None:
    """Same output as ``table.add_row(*row)`` for every row, then ``console.print(table)``."""
    plan = _plan(table, console, rows) if len(rows) >= MERGE_MIN_ROWS else None
    if plan is not None:
        text = _draw_plain(table, console, plan)
        if text is not None:
            _write(console, text)
            return
    add_rows(table, console, rows, plan)
    console.print(table)


def add_rows(table: Table, console: Console, rows: Sequence[Sequence[str]],
             plan: _Plan | None = None) -> None:
    """``table.add_row(*row)`` for every row, drawn identically but faster."""
    if plan is None and len(rows) >= MERGE_MIN_ROWS:
        plan = _plan(table, console, rows)
    if plan is None:
        for row in rows:
            table.add_row(*row)
        return
    from rich.text import Text

    newline = Text("\n")
    run: list[list[Text]] = []

    def flush() -> None:
        if run:
            table.add_row(*(newline.join(col) for col in zip(*run, strict=True)))
            run.clear()

    for row, cells, multi in zip(rows, plan.cells, plan.multiline, strict=True):
        if multi:  # a multi-line row is its own table row
            flush()
            table.add_row(*row)
        else:
            run.append(cells)
    flush()


def _plan(table: Table, console: Console, rows: Sequence[Sequence[str]]) -> _Plan | None:
    """The rows as Text with natural column widths, or None when merging could change
    the drawing."""
    from rich.cells import cell_len

    columns = table.columns
    box = table.box
    if (table.show_lines or box is None or not table.show_edge or table.collapse_padding
            or not table.pad_edge or table.padding != (0, 1, 0, 1) or table.expand
            or table.width is not None or table.leading or table.row_styles or table.show_footer
            or not table.show_header or table.rows or any(c._cells for c in columns)
            or (box.mid_left, box.mid_vertical, box.mid_right)
            != (box.foot_left, box.foot_vertical, box.foot_right)):
        return None
    ncols = len(columns)
    for c in columns:
        # (``ratio`` only matters for expanding tables, excluded above.)
        if (c.width is not None or c.max_width is not None or c.vertical != "top"
                or not isinstance(c.header, str)):
            return None
    options = console.options
    render_str = console.render_str
    headers = [render_str(str(c.header), highlight=False).plain for c in columns]
    if not all(h.isprintable() for h in headers):
        return None
    widths = [max(cell_len(h), c.min_width or 0) for h, c in zip(headers, columns, strict=True)]
    # A table renders str cells with each column's ``highlight`` setting; without colour,
    # styles never reach the output and highlighting would only cost time.
    colour = console.color_system is not None
    highlights = [bool(c.highlight) and colour for c in columns]
    markup = options.markup
    cache: dict[tuple[str, bool], Text] = {}  # verdict and format cells repeat
    all_cells: list[list[Text]] = []
    multiline: list[bool] = []
    for row in rows:
        if len(row) != ncols or not all(isinstance(cell, str) for cell in row):
            return None
        cells = []
        multi = False
        for i, (cell, h) in enumerate(zip(row, highlights, strict=True)):
            text = cache.get((cell, h))
            if text is None:
                text = cache[(cell, h)] = render_str(cell, highlight=h, markup=markup)
            cells.append(text)
            plain = text.plain
            if plain.isprintable():
                w = cell_len(plain)
            elif plain.replace("\n", "").isprintable() and not plain.endswith("\n"):
                multi = True  # newline-separated lines: the row stays whole
                w = max(cell_len(line) for line in plain.split("\n"))
            else:
                return None  # tabs, escapes, controls: rich's own path decides
            if w > widths[i]:
                widths[i] = w
        all_cells.append(cells)
        multiline.append(multi)
    # Natural width: content (or min_width) + one space of padding either side + the
    # vertical rules. When it fits, rich gives every column that width and no cell wraps.
    natural = sum(widths) + 2 * ncols + ncols + 1
    if natural > options.max_width:
        return None  # rich would shrink and wrap columns: row by row it is
    return _Plan(all_cells, multiline, widths)


def _draw_plain(table: Table, console: Console, plan: _Plan) -> str | None:
    """The table as rich draws it without colour, or None when colour or another console
    feature is in play."""
    from rich.cells import cell_len

    options = console.options
    if (console.color_system is not None or console.record or console.quiet
            or console.is_jupyter or options.legacy_windows):
        return None
    columns = table.columns
    if any(c.justify != "left" for c in columns):
        return None
    safe = table.safe_box if table.safe_box is not None else console.safe_box
    assert table.box is not None
    box = table.box.substitute(options, safe=safe)
    padded = [w + 2 for w in plan.widths]
    table_width = sum(padded) + len(padded) + 1
    lines: list[str] = []
    if table.title:
        if not isinstance(table.title, str):
            return None
        title = console.render_str(table.title, highlight=False).plain.rstrip()
        tw = cell_len(title)
        if (not title.isprintable() or tw > table_width or table.title_justify != "center"):
            return None
        left = (table_width - tw) // 2
        lines.append(" " * left + title + " " * (table_width - tw - left))
    lines.append(box.get_top(padded))

    def row_line(texts: Sequence[str], left: str, mid: str, right: str) -> str:
        parts = [left]
        for i, (t, w) in enumerate(zip(texts, plan.widths, strict=True)):
            if i:
                parts.append(mid)
            parts.append(" " + t + " " * (w - cell_len(t) + 1))
        parts.append(right)
        return "".join(parts)

    headers = [console.render_str(str(c.header), highlight=False).plain for c in columns]
    lines.append(row_line(headers, box.head_left, box.head_vertical, box.head_right))
    lines.append(box.get_row(padded, "head", edge=True))
    for cells, multi in zip(plan.cells, plan.multiline, strict=True):
        if not multi:
            lines.append(row_line([t.plain for t in cells], box.mid_left, box.mid_vertical,
                                  box.mid_right))
            continue
        split = [t.plain.split("\n") for t in cells]
        for n in range(max(len(s) for s in split)):  # vertical alignment: top
            lines.append(row_line([s[n] if n < len(s) else "" for s in split], box.mid_left,
                                  box.mid_vertical, box.mid_right))
    lines.append(box.get_bottom(padded))
    lines.append("")
    return "\n".join(lines)


def _write(console: Console, text: str) -> None:
    """Write as Console.print does: one write and a flush; a closed pipe goes to the
    console's on_broken_pipe."""
    try:
        try:
            console.file.write(text)
        except UnicodeEncodeError as error:
            error.reason = (f"{error.reason}\n*** You may need to add PYTHONIOENCODING=utf-8 "
                            "to your environment ***")
            raise
        console.file.flush()
    except BrokenPipeError:
        console.on_broken_pipe()
