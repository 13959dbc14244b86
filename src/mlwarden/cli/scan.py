"""``mlwarden scan`` and ``mlwarden rules``."""

from __future__ import annotations

import sys
from typing import IO

import click

from mlwarden.cli.errors import CliError, write_output
from mlwarden.report.model import Report, Verdict, exit_code
from mlwarden.report.render import FORMATS, render

FAIL_ON = {"malicious": Verdict.MALICIOUS, "unscannable": Verdict.UNSCANNABLE,
           "suspicious": Verdict.SUSPICIOUS, "never": None}


def emit(report: Report, fmt: str, output: str | None) -> None:
    """Render to a file atomically, or to stdout."""
    if output is None:
        render(report, fmt, sys.stdout)
        return
    import io

    buf = io.StringIO()
    render(report, fmt, buf)
    write_output(output, buf.getvalue())


def _progress_bar(enabled: bool):  # type: ignore[no-untyped-def]
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    task = progress.add_task("scanning", total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return progress, update


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--workers", "-j", type=click.IntRange(0, 64), default=0,
              help="Parallel processes (0 = automatic).")
@click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default="suspicious",
              show_default=True, help="Least severe verdict that makes the exit status nonzero.")
@click.option("--hash/--no-hash", "hash_", default=None,
              help="Always / never compute sha256 (default: local files up to 64 MiB; "
                   "remote files report the sha256 their endpoint publishes, and --hash "
                   "reads them whole).")
@click.option("--verbose", "-v", is_flag=True,
              help="List every file (clean ones too) and informational findings.")
@click.option("--allow-class", "allow_class", multiple=True, metavar="MODULE.CLASS",
              help="Admit this class, by exact name, as plain reconstruction in pickles "
                   "(repeatable; never admits calls). Also MLWARDEN_ALLOW_CLASSES.")
@click.option("--source-path", "source_path", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="Also read library sources from this directory when judging classes "
                   "of pickles (repeatable). Also MLWARDEN_SOURCE_PATH.")
def scan(paths: tuple[str, ...], fmt: str, output: str | None, workers: int, fail_on: str,
         hash_: bool | None, verbose: bool, allow_class: tuple[str, ...],
         source_path: tuple[str, ...]) -> None:
    """Scan model files and directories statically; nothing is executed or unpickled.

    PATHS may also be remote: hf://ORG/NAME[@REV][/PATH] (the Hub, a mirror or mlwarden
    serve, per HF_ENDPOINT and HF_TOKEN), s3://BUCKET/PREFIX, gs://BUCKET/PREFIX. Remote
    files are read with range requests: only the bytes the scanner needs.
    """
    from mlwarden.scan.engine import InputError, ScanOptions, scan_paths

    options = ScanOptions(workers=workers,
                          hash={None: "auto", True: "always", False: "never"}[hash_],
                          allow_classes=frozenset(allow_class), source_paths=source_path)
    show_progress = fmt == "table" and output is None and sys.stderr.isatty()
    progress, update = _progress_bar(show_progress)
    try:
        if progress is not None:
            with progress:
                report = scan_paths(paths, options, update)
        else:
            report = scan_paths(paths, options)
    except InputError as exc:
        raise CliError(str(exc)) from exc
    if fmt == "table" and output is None:
        from mlwarden.report.render import render_table
        render_table(report, sys.stdout, verbose=verbose)
    else:
        emit(report, fmt, output)
    threshold = FAIL_ON[fail_on]
    sys.exit(0 if threshold is None else exit_code(report, threshold))


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
def rules(fmt: str) -> None:
    """List every rule with its verdict, severity and explanation."""
    import json

    from mlwarden.catalog import all_rules

    rs = all_rules()
    out: IO[str] = sys.stdout
    if fmt == "json":
        out.write(json.dumps([{"id": r.id, "verdict": r.verdict.value,
                               "severity": r.severity.value, "title": r.title,
                               "help": r.help} for r in rs], indent=2) + "\n")
    elif fmt == "markdown":
        from mlwarden.catalog import rules_markdown

        out.write(rules_markdown() + "\n")
    else:
        from rich.table import Table

        from mlwarden.report.render import make_console

        t = Table(title="mlwarden rules")
        for col in ("rule", "verdict", "severity", "title"):
            t.add_column(col)
        for r in rs:
            t.add_row(r.id, r.verdict.value, r.severity.value, r.title)
        make_console().print(t)
