"""The fast table paths draw exactly what rich draws row by row."""

from __future__ import annotations

import io
import random
import sys

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


# ----------------------------------------------------------- rich-free piped table

from mlwarden.report import plain_table  # noqa: E402


def _rich_table(report: Report, verbose: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    """render_table's output through rich (the plain path switched off)."""
    with monkeypatch.context() as m:
        m.setattr(plain_table, "colour_free", lambda out: False)
        out = io.StringIO()
        try:
            render_table(report, out, verbose=verbose)
        except MarkupError:
            return "MarkupError"
        return out.getvalue()


# Markup, escapes, emoji codes, wide/zero-width/ambiguous characters, controls.
_RPIECES = [*"ab/._-[]:\\ 漢éΩ…", "[/]", "[bold]", "\\[x]", "[@a]", "[#f]", ":smile:", ":x:",
            "::", "e\u0301", "😀",
            "\u3164", "ﾊ", "\u1161", "\u00a0", "\t", "\n", "\x1b", "x" * 30]
# What real reports hold: the plain path draws these.
_PPIECES = [*"abc/._- 漢é…\\()'", ": ", "x" * 12, "model.bin", "12"]
# Also in real finding messages and locations (escaped by render.py).
_EPIECES = ["[called]", "[process; https://x]", "[", "]", "\\[1", "\\[/]", "[/]", "[b]"]


def _random_report(rng: random.Random) -> Report:
    """A report whose texts stay plain, or (wild) may hold anything rich interprets."""
    wild = rng.random() < 0.4

    def text(n: int = 10, escaped: bool = False) -> str:
        pieces = _PPIECES + _RPIECES if wild and rng.random() < 0.3 else _PPIECES
        if escaped:  # render.py escapes messages and locations: brackets are ordinary
            pieces = pieces + _EPIECES
        return "".join(rng.choice(pieces) for _ in range(rng.randrange(n + 1)))

    def location() -> Location | None:
        if rng.random() < 0.3:
            return None
        return Location(member=rng.choice([None, text(escaped=True)]),
                        offset=rng.choice([None, rng.randrange(10**9)]),
                        detail=rng.choice([None, text(4, escaped=True)]))

    files = []
    for _ in range(rng.randrange(9)):
        findings = tuple(
            Finding(rng.choice(["pickle-dangerous-callable", "zip-bad-crc", "x:y:", "r\\"]
                               if wild else ["pickle-global", "zip-bad-crc"]),
                    rng.choice(list(Severity)), rng.choice(list(Verdict)),
                    text(escaped=True), location())
            for _ in range(rng.choice([0, 0, 0, 1, 2, 3, 9, 11])))
        path = rng.choice([text(14), "m.pkl", "a/" * rng.choice([20, 70])])
        fmt = rng.choice(["pickle", "pytorch-zip", "zip"] + ["a:b:", "[x]"] * wild)
        files.append(FileResult(path, fmt, rng.choice(list(Verdict)), None, None, findings))
    command = rng.choice(["scan", "lint", "deps"] + [" scan", "a:b:"] * wild)
    return Report(command, tuple(files), rng.random() * 100)


@settings(max_examples=800, deadline=None)
@given(seed=st.integers(0, 2**32), verbose=st.booleans())
def test_plain_table_draws_like_rich(seed: int, verbose: bool) -> None:
    report = _random_report(random.Random(seed))
    with pytest.MonkeyPatch.context() as m:
        expected = _rich_table(report, verbose, m)
    got = plain_table.draw(report, verbose)
    if expected == "MarkupError":
        assert got is None
    elif got is not None:
        assert got == expected


def test_random_reports_often_take_the_plain_path() -> None:
    """Keeps the comparison above meaningful: many generated reports are drawn both ways."""
    rng = random.Random(3)
    drawn = sum(plain_table.draw(_random_report(rng)) is not None for _ in range(200))
    assert drawn > 60


def _typical_report(n: int) -> Report:
    files = []
    for i in range(n):
        findings: tuple[Finding, ...] = ()
        verdict = Verdict.CLEAN
        if i % 7 == 0:
            verdict = Verdict.MALICIOUS
            findings = tuple(
                Finding("pickle-dangerous-callable", Severity.CRITICAL, verdict,
                        f"posix.system called with 'touch {i}' é漢 C:\\x\\",
                        Location(member=f"archive/data{k}.pkl", offset=i, detail="pickle #1"))
                for k in range(1 + i % 11))
        elif i % 5 == 0:
            verdict = Verdict.SUSPICIOUS
            findings = (Finding("zip-bad-crc", Severity.LOW, verdict, "CRC mismatch\non two lines",
                                None),
                        Finding("pickle-info", Severity.INFO, Verdict.CLEAN, "protocol 2"))
        files.append(FileResult(f"models/shard-{i:05d}/模型.bin", "pytorch-zip", verdict, 1, None,
                                findings))
    return Report("scan", tuple(files), 1.234)


@pytest.mark.parametrize("n", [0, 1, 9, 120])
@pytest.mark.parametrize("verbose", [False, True])
def test_plain_table_takes_typical_reports(monkeypatch: pytest.MonkeyPatch, n: int,
                                           verbose: bool) -> None:
    """Ordinary reports (wide characters, backslashes, multi-line findings, "… N more")
    are drawn without rich, identically."""
    report = _typical_report(n)
    got = plain_table.draw(report, verbose)
    assert got is not None
    assert got == _rich_table(report, verbose, monkeypatch)
    out = io.StringIO()
    render_table(report, out, verbose=verbose)  # StringIO: not a terminal
    assert out.getvalue() == got


def test_plain_table_declines_what_it_cannot_match() -> None:
    base = _typical_report(3)
    f = base.files[0]
    too_wide = Report("scan", (FileResult("p", "pickle", Verdict.SUSPICIOUS, 1, None, (
        Finding("zip-bad-crc", Severity.LOW, Verdict.SUSPICIOUS, "x" * 300),)),))
    for report in (
        Report("scan", (FileResult("a/[bold]b", "pickle", Verdict.CLEAN, 1, None),)),
        Report("scan", (FileResult("a/:smile:.pkl", "pickle", Verdict.CLEAN, 1, None),)),
        Report("scan", (FileResult("e\u0301.pkl", "pickle", Verdict.CLEAN, 1, None),)),
        Report("scan", (FileResult("tab\t.pkl", "pickle", Verdict.CLEAN, 1, None),)),
        too_wide,
    ):
        assert plain_table.draw(report, verbose=True) is None  # clean rows need --verbose
    assert plain_table.draw(Report("scan", (f,))) is not None


_MARKUPISH = st.text(alphabet="ab[]/\\@#:= \n", max_size=30)


@settings(max_examples=500, deadline=None)
@given(text=_MARKUPISH, loc=_MARKUPISH)
def test_escape_and_markup_text_match_rich(text: str, loc: str) -> None:
    from rich.markup import escape, render

    assert plain_table.escape(text) == escape(text)
    markup = f"[bold red]rule[/] {escape(text)} [dim]({escape(loc)})[/]\n[green]r[/] x"
    assert plain_table.markup_plain(markup, 6) == render(markup, emoji=False).plain
    assert plain_table.markup_plain(markup, 5) is None


def test_char_width_agrees_with_rich_for_every_code_point() -> None:
    from rich.cells import get_character_cell_size

    known = 0
    for cp in range(0x80, sys.maxunicode + 1):
        ch = chr(cp)
        if not ch.isprintable():
            continue
        w = plain_table._char_width(ch)
        if w is not None:
            known += 1
            assert w == get_character_cell_size(ch), hex(cp)
    assert known > 100_000  # letters, digits, punctuation of every script
    assert plain_table.cell_width("漢字 ab") == 7
    assert plain_table.cell_width("e\u0301") is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_free_follows_riches_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "UNICODE_VERSION", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    assert plain_table.colour_free(io.StringIO())
    assert not plain_table.colour_free(_Tty())
    # NO_COLOR and TERM only matter for terminals.
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    assert plain_table.colour_free(io.StringIO())
    for name, value in (("FORCE_COLOR", ""), ("FORCE_COLOR", "1"), ("TTY_COMPATIBLE", "1"),
                        ("UNICODE_VERSION", "9.0")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            assert not plain_table.colour_free(io.StringIO())
    latin1 = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    assert not plain_table.colour_free(latin1)


def test_forced_colour_still_goes_through_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    render_table(_typical_report(3), out)
    assert "\x1b[" in out.getvalue()
