"""Add many rows to a rich Table without paying rich's per-row cost.

rich lays out every cell of every row separately (padding, segments, cropping): a
1,000-file scan spent longer drawing its table than scanning. When the table fits the
console at its natural width no cell wraps, so a run of single-line rows draws exactly
like one row whose cells hold those lines joined by newlines: same column widths (the
widest line decides), same padding, no separators between rows (``show_lines`` off).
Cells are converted to Text the way rich converts a str cell (markup, emoji,
highlighting), so the output is byte-identical; anything else (multi-line cells, tabs or
control characters, a table wider than the console, row separators) takes rich's own
per-row path. tests/perf/test_table_rows.py compares both paths.
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


def add_rows(table: Table, console: Console, rows: Sequence[Sequence[str]]) -> None:
    """``table.add_row(*row)`` for every row, drawn identically but faster."""
    texts = _merge_plan(table, console, rows) if len(rows) >= MERGE_MIN_ROWS else None
    if texts is None:
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

    for row, cells in zip(rows, texts, strict=True):
        if cells is None:  # a multi-line row is its own table row
            flush()
            table.add_row(*row)
        else:
            run.append(cells)
    flush()


def _merge_plan(table: Table, console: Console, rows: Sequence[Sequence[str]]
                ) -> list[list[Text] | None] | None:
    """Each row's cells as Text (None for a row kept as is), or None when merging could
    change the drawing."""
    from rich.cells import cell_len

    columns = table.columns
    if (table.show_lines or table.box is None or not table.show_edge or table.collapse_padding
            or not table.pad_edge or table.padding != (0, 1, 0, 1) or table.expand
            or table.width is not None or table.leading or table.row_styles or table.show_footer
            or table.rows or any(c._cells for c in columns)):
        return None
    ncols = len(columns)
    for c in columns:
        # (``ratio`` only matters for expanding tables, excluded above.)
        if (c.width is not None or c.max_width is not None or c.vertical != "top"
                or not isinstance(c.header, str) or "\n" in c.header):
            return None
    options = console.options
    widths = [max(cell_len(c.header) if table.show_header else 0, c.min_width or 0)
              for c in columns]
    plan: list[list[Text] | None] = []
    render_str = console.render_str
    # Without colour, styles never reach the output; highlighting would only cost time.
    highlight = False if console.color_system is None else options.highlight
    for row in rows:
        if len(row) != ncols or not all(isinstance(cell, str) for cell in row):
            return None
        cells = [render_str(cell, highlight=highlight, markup=options.markup) for cell in row]
        merged = True
        for i, t in enumerate(cells):
            plain = t.plain
            if not plain.isprintable():
                if "\n" not in plain or not plain.replace("\n", "").isprintable():
                    return None  # tabs, escapes, controls: rich's own path decides
                merged = False  # newline-separated lines: keep the row whole
                w = max(cell_len(line) for line in plain.split("\n"))
            else:
                w = cell_len(plain)
            if w > widths[i]:
                widths[i] = w
        plan.append(cells if merged else None)
    # Natural width: content (or min_width) + one space of padding either side + the
    # vertical rules. When it fits, rich gives every column that width and no cell wraps.
    natural = sum(widths) + 2 * ncols + ncols + 1
    if natural > options.max_width:
        return None  # rich would shrink and wrap columns: row by row it is
    return plan
