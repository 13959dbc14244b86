"""``mlwarden lint``: AST rules for risky model-loading code (never imports the code).

Exit status: 0 no finding at or above --fail-on, 1 findings, 4 bad input (a missing path,
or a file that could not be parsed: it is reported as a ``lint-unparsable`` finding).
"""

from __future__ import annotations

import io
import sys

import click

from mlwarden.cli.errors import EXIT_USAGE, CliError, write_output
from mlwarden.report.model import Report, Severity

FORMATS = ("table", "json", "sarif")
SEVERITIES = [s.value for s in Severity] + ["never"]


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def lint_exit_code(report: Report, fail_on: Severity | None) -> int:
    from mlwarden.lint.rules import UNPARSABLE

    findings = [f for fr in report.files for f in fr.findings]
    if any(f.rule == UNPARSABLE.id for f in findings):
        return EXIT_USAGE
    if fail_on is None:
        return 0
    return 1 if any(f.severity.rank >= fail_on.rank for f in findings) else 0


def _render(report: Report, fmt: str) -> str:
    from mlwarden.report.flat import to_flat_json
    from mlwarden.report.render import render

    if fmt == "json":
        return to_flat_json(report)
    buf = io.StringIO()
    render(report, fmt, buf)
    return buf.getvalue()


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--select", multiple=True, metavar="RULES",
              help="Only these rules (comma-separated ids or id prefixes).")
@click.option("--ignore", multiple=True, metavar="RULES",
              help="Skip these rules (comma-separated ids or id prefixes).")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="low", show_default=True,
              help="Least severe finding that makes the exit status 1.")
@click.option("--verbose", "-v", is_flag=True,
              help="List every file in the table, clean ones too.")
def lint(paths: tuple[str, ...], fmt: str, output: str | None, select: tuple[str, ...],
         ignore: tuple[str, ...], fail_on: str, verbose: bool) -> None:
    """Lint Python files and notebooks for risky ML loading code.

    Checks trust_remote_code, torch.load without weights_only=True, unpinned Hub
    revisions, use_safetensors=False, pickle-based loaders, Keras safe_mode=False and
    plain-http HF_ENDPOINT. Suppress one finding with
    `# mlwarden: ignore[RULE] reason` (the reason is required).
    """
    from mlwarden.lint.engine import Selection, expand_rule_patterns, lint_paths
    from mlwarden.lint.sources import InputError

    try:
        selection = Selection(expand_rule_patterns(_split(select)),
                              expand_rule_patterns(_split(ignore)))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        report = lint_paths(paths, selection)
    except InputError as exc:
        raise CliError(str(exc)) from exc
    if output is None:
        if fmt == "table":
            from mlwarden.report.render import render_table

            render_table(report, sys.stdout, verbose=verbose)
        else:
            sys.stdout.write(_render(report, fmt))
    else:
        write_output(output, _render(report, fmt))
    threshold = None if fail_on == "never" else Severity(fail_on)
    sys.exit(lint_exit_code(report, threshold))
