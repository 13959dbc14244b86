"""``mlwarden deps`` (audit, inspect) and ``mlwarden doctor``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlwarden.cli.errors import CliError, write_output
from mlwarden.report.model import Report, Verdict, exit_code
from mlwarden.report.render import FORMATS

FAIL_ON = {"malicious": Verdict.MALICIOUS, "unscannable": Verdict.UNSCANNABLE,
           "suspicious": Verdict.SUSPICIOUS, "never": None}


def _emit(report: Report, fmt: str, output: str | None, verbose: bool = False) -> None:
    """JSON is the flat findings shape shared with lint; table and SARIF are the shared ones."""
    from mlwarden.report.flat import to_flat_json
    from mlwarden.report.render import render, render_table

    buf = io.StringIO()
    if fmt == "json":
        buf.write(to_flat_json(report))
    elif fmt == "table":
        render_table(report, buf if output else sys.stdout, verbose=verbose)
    else:
        render(report, fmt, buf)
    if output is None:
        sys.stdout.write(buf.getvalue())
        return
    write_output(output, buf.getvalue())


def _exit(report: Report, fail_on: str) -> None:
    threshold = FAIL_ON[fail_on]
    sys.exit(0 if threshold is None else exit_code(report, threshold))


_common = [
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                 show_default=True),
    click.option("--output", "-o", type=click.Path(dir_okay=False),
                 help="Write the report here (atomically)."),
    click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default="suspicious",
                 show_default=True,
                 help="Least severe verdict that makes the exit status nonzero."),
    click.option("--verbose", "-v", is_flag=True, help="Show informational findings too."),
]


F = TypeVar("F", bound=Callable[..., Any])


def common(f: F) -> F:
    for opt in reversed(_common):
        f = opt(f)
    return f


class _DepsGroup(click.Group):
    """``mlwarden deps [PATH]`` audits; ``mlwarden deps inspect ...`` inspects packages."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and (args[0] in self.commands or args[0] in ("-h", "--help")):
            return super().parse_args(ctx, args)
        return super().parse_args(ctx, ["audit", *args])


@click.group(cls=_DepsGroup)
def deps() -> None:
    """Audit dependency inputs, inspect packages without installing them.

    `mlwarden deps [PATH] [OPTIONS]` is `mlwarden deps audit [PATH] [OPTIONS]`.
    """


@deps.command("audit")
@click.argument("path", required=False)
@common
@click.option("--internal", multiple=True, metavar="NAME",
              help="Internal package name (repeatable); also [tool.mlwarden] "
                   "internal-packages in pyproject.toml.")
@click.option("--index-url", default="https://pypi.org", show_default=True,
              help="Public index to check internal names against (JSON API base URL, or a "
                   "simple-API root ending in /simple).")
@click.option("--mlwarden-index", multiple=True, metavar="URL", envvar="MLWARDEN_INDEX_URL",
              help="URL of an `mlwarden index serve` instance (repeatable; also "
                   "[tool.mlwarden] index-url): naming it as the only source is the safe "
                   "setting.")
@click.option("--offline", is_flag=True, help="Skip every network lookup.")
@click.option("--online", "online_advisories", is_flag=True,
              help="Also query OSV for every exact version (fails closed).")
@click.option("--osv-url", default="https://api.osv.dev", show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True)
@click.option("--installed", is_flag=True, help="Also audit the installed environment.")
@click.option("--site-dir", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Site directory to read installed distributions from (repeatable).")
@click.option("--advisory-db", type=click.Path(dir_okay=False),
              help="Use this OSV advisory database instead of the bundled one.")
def audit_cmd(path: str | None, fmt: str, output: str | None, fail_on: str, verbose: bool,
              internal: tuple[str, ...], index_url: str, mlwarden_index: tuple[str, ...],
              offline: bool, online_advisories: bool, osv_url: str, timeout: float, installed: bool,
              site_dir: tuple[str, ...], advisory_db: str | None) -> None:
    """Audit requirements, pyproject, lock and index configuration files under PATH
    (default: the current directory, unless only --installed/--site-dir is asked for)."""
    from mlwarden.deps.advisories import AdvisoryDBError
    from mlwarden.deps.audit import AuditOptions, audit
    from mlwarden.deps.inputs.discover import DiscoveryError

    options = AuditOptions(internal=internal, index_url=index_url, offline=offline,
                           online_advisories=online_advisories, osv_url=osv_url,
                           timeout=timeout, installed=installed or bool(site_dir),
                           site_dirs=site_dir, advisory_db=advisory_db,
                           mlwarden_index=mlwarden_index)
    try:
        target = None if path is None and options.installed else Path(path or ".")
        report = audit(target, options)
    except (DiscoveryError, AdvisoryDBError) as exc:
        raise CliError(str(exc)) from exc
    if not report.files:
        click.echo(f"mlwarden: no dependency inputs found under {path or '.'}", err=True)
    _emit(report, fmt, output, verbose)
    _exit(report, fail_on)


@deps.command("inspect")
@click.argument("targets", nargs=-1)
@common
@click.option("--installed", is_flag=True,
              help="Inspect installed distributions (all, or the NAMEs given as targets).")
@click.option("--site-dir", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Site directory of the installed distributions (repeatable).")
def inspect_cmd(targets: tuple[str, ...], fmt: str, output: str | None, fail_on: str,
                verbose: bool, installed: bool, site_dir: tuple[str, ...]) -> None:
    """Inspect WHEEL, SDIST or DIR (or --installed [NAME...]) for install-time and
    import-time code, statically: nothing is imported, built or installed."""
    from mlwarden.deps.inspect.engine import InspectError, inspect_installed, inspect_paths

    if not targets and not installed:
        raise CliError("give a wheel, sdist or directory, or --installed [NAME...]")
    try:
        if installed:
            report = inspect_installed(list(targets), list(site_dir) or None)
        else:
            report = inspect_paths([Path(t) for t in targets])
    except InspectError as exc:
        raise CliError(str(exc)) from exc
    _emit(report, fmt, output, verbose)
    _exit(report, fail_on)


@click.command()
@common
@click.option("--allow-endpoint", multiple=True, metavar="URL",
              help="HF_ENDPOINT values that are acceptable (repeatable; huggingface.co is "
                   "always allowed).")
@click.option("--production", is_flag=True,
              help="Treat this host as production (also MLWARDEN_PRODUCTION=1).")
@click.option("--site-dir", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Site directory to read installed distributions from (repeatable).")
def doctor(fmt: str, output: str | None, fail_on: str, verbose: bool,
           allow_endpoint: tuple[str, ...], production: bool,
           site_dir: tuple[str, ...]) -> None:
    """Report this environment's ML supply-chain posture (Hub endpoint, proxies, tokens,
    vulnerable installed versions)."""
    from mlwarden.deps.doctor import DoctorOptions, run_doctor

    report = run_doctor(DoctorOptions(allow_endpoints=allow_endpoint, production=production,
                                      site_dirs=site_dir))
    _emit(report, fmt, output, verbose)
    _exit(report, fail_on)
