"""The fast table paths draw exactly what rich draws row by row."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich import box as rich_box
from rich.console import Console
from rich.errors import MarkupError
from rich.table import Table

from mlwarden.report import table_rows
from mlwarden.report.model import FileResult, Finding, Location, Report, Severity, Verdict
from mlwarden.report.render import render_table

Row = tuple[str, str, str, str]


def _table(paths: list[str], highlight: bool = False, box: rich_box.Box = rich_box.HEAVY_HEAD
           ) -> Table:
    # Shaped like render_table's table.
    t = Table(title="mlwarden scan", show_lines=False, expand=False, highlight=highlight,
              box=box)
    t.add_column("verdict", no_wrap=True)
    t.add_column("path", no_wrap=True, overflow="fold",
                 min_width=min(max((len(p) for p in paths), default=4), 120))
    t.add_column("format", no_wrap=True)
    t.add_column("findings", overflow="fold", ratio=1)
    return t


def _draw(rows: list[Row], width: int, color: bool, how: str, highlight: bool = False,
          box: rich_box.Box = rich_box.HEAVY_HEAD) -> str:
    """how: "rich" (add_row per row), "merged" (add_rows) or "print" (print_table)."""
    out = io.StringIO()
    console = Console(file=out, width=width, soft_wrap=False, force_terminal=color,
                      color_system="truecolor" if color else None)
    table = _table([r[1] for r in rows], highlight, box)
    try:
        if how == "print":
            table_rows.print_table(table, console, rows)
            return out.getvalue()
        if how == "merged":
            table_rows.add_rows(table, console, rows)
        else:
            for row in rows:
                table.add_row(*row)
        console.print(table)
    except MarkupError:
        return "MarkupError"
    return out.getvalue()


_PIECES = [*"ab/._-[]:\\ 漢é", "[/]", ":smile:", "[bold]", "123", "'q'", "xxxxxxxxxx"]
_CONTROLS = ["\t", "\n", "\x1b", "\n"]
# Mostly printable cells (merged); sometimes line breaks or controls (rich's own path).
_TEXT = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=12).map("".join),
    st.lists(st.sampled_from(_PIECES + _CONTROLS), max_size=12).map("".join))
_VERDICT = st.sampled_from(["[green]clean[/]", "[bold red]malicious[/]", "[yellow]suspicious[/]"])
_ROW = st.tuples(_VERDICT, _TEXT, st.sampled_from(["pickle", "pytorch-zip", "zip"]),
                 st.one_of(st.just(""), _TEXT))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_ROW, max_size=12), width=st.sampled_from([30, 80, 200]),
       color=st.booleans(), highlight=st.booleans(),
       box=st.sampled_from([rich_box.HEAVY_HEAD, rich_box.ROUNDED, rich_box.SQUARE]))
def test_fast_paths_draw_like_rich(monkeypatch: pytest.MonkeyPatch, rows: list[Row],
                                   width: int, color: bool, highlight: bool,
                                   box: rich_box.Box) -> None:
    monkeypatch.setattr(table_rows, "MERGE_MIN_ROWS", 1)
    expected = _draw(rows, width, color, "rich", highlight, box)
    assert _draw(rows, width, color, "merged", highlight, box) == expected
    if expected != "MarkupError":
        assert _draw(rows, width, color, "print", highlight, box) == expected


@pytest.mark.parametrize("highlight", [False, True])
@pytest.mark.parametrize("color", [False, True])
def test_colour_and_highlighting_match(monkeypatch: pytest.MonkeyPatch, highlight: bool,
                                       color: bool) -> None:
    monkeypatch.setattr(table_rows, "MERGE_MIN_ROWS", 1)
    rows = [("[green]clean[/]", "a 123 /x/y 'q' :smile: 漢", "pickle", ""),
            ("[bold red]malicious[/]", "b", "zip", "[red]rule[/] one\n[red]rule[/] two")] * 3
    expected = _draw(rows, 200, color, "rich", highlight)
    assert _draw(rows, 200, color, "merged", highlight) == expected
    assert _draw(rows, 200, color, "print", highlight) == expected
    assert ("\x1b[32mclean" in expected) is color


def test_plain_rows_are_merged() -> None:
    rows = [("[green]clean[/]", f"d/f{i}.pkl", "pickle", "") for i in range(100)]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    table = _table([r[1] for r in rows])
    table_rows.add_rows(table, console, rows)
    assert table.row_count == 1  # one drawn row holds every single-line row
    assert _draw(rows, 200, False, "merged") == _draw(rows, 200, False, "rich")
    assert _draw(rows, 200, False, "print") == _draw(rows, 200, False, "rich")


def test_too_wide_falls_back_to_rich_rows() -> None:
    rows = [("[green]clean[/]", f"d/f{i}.pkl", "pickle", "x" * 300) for i in range(40)]
    console = Console(file=io.StringIO(), width=100, color_system=None)
    table = _table([r[1] for r in rows])
    table_rows.add_rows(table, console, rows)
    assert table.row_count == 40
    assert _draw(rows, 100, False, "print") == _draw(rows, 100, False, "rich")


def test_render_table_of_many_files_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for i in range(120):
        findings: tuple[Finding, ...] = ()
        verdict = Verdict.CLEAN
        if i % 17 == 0:
            verdict = Verdict.MALICIOUS
            findings = (Finding("pickle-dangerous-callable", Severity.CRITICAL, verdict,
                                "posix.system [called] " + "x" * (i % 90),
                                Location(offset=i, detail="pickle #1")),) * (1 + i % 3)
        files.append(FileResult(f"dir/[sub]/file_{i:04d}.pkl", "pickle", verdict, 10, None,
                                findings))
    report = Report("scan", tuple(files), 0.5)

    def draw() -> str:
        out = io.StringIO()
        render_table(report, out)
        return out.getvalue()

    fast = draw()
    monkeypatch.setattr(table_rows, "MERGE_MIN_ROWS", 10**9)
    assert fast == draw()
    assert "file_0119.pkl" in fast and "posix.system [called]" in fast
