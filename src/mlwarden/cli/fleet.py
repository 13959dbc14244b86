"""``mlwarden fleet scan``: scan many repositories, resumably, on local processes or Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlwarden.cli.errors import CliError


@click.group()
def fleet() -> None:
    """Scan whole organisations, registries and buckets."""


@fleet.command("scan")
@click.option("--repos", "repo_file", type=click.Path(dir_okay=False, exists=True),
              help="File of repositories: ORG/NAME[@REV] or hf://, s3://, gs:// URLs.")
@click.option("--org", "orgs", multiple=True, help="Every model repository of ORG.")
@click.option("--registry", "registries", multiple=True, metavar="URL",
              help="Every repository of a Hub-compatible registry (mlwarden serve).")
@click.option("--prefix", "prefixes", multiple=True, metavar="s3://BUCKET/PREFIX",
              help="Every repository under an object-store prefix (ORG/NAME directories).")
@click.option("--depth", default=2, show_default=True, type=click.IntRange(1, 8),
              help="Directory levels below --prefix that make one repository.")
@click.option("--endpoint", default=None,
              help="Hub endpoint for --repos/--org (default: huggingface_hub's, HF_ENDPOINT).")
@click.option("--out", default="fleet-results", show_default=True,
              help="Results: a directory of Parquet files, or a postgresql:// URL.")
@click.option("--run", "run_name", default="default", show_default=True,
              help="Run name inside a PostgreSQL results database.")
@click.option("--cache", "cache", default=None, envvar="MLWARDEN_SCAN_CACHE",
              help="Verdict cache: a directory or .db file (SQLite) or a postgresql:// URL "
                   "(a cluster needs PostgreSQL).")
@click.option("--no-cache", is_flag=True, help="Scan every file, record nothing.")
@click.option("--ray", "ray", default=None, metavar="auto|ADDRESS",
              help="Run on Ray: 'auto' starts a local instance, else join ADDRESS.")
@click.option("--workers", "-j", default=0, type=click.IntRange(0, 4096),
              help="Parallel repositories (default: CPUs; with Ray: the cluster's).")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 1024),
              help="Requests in flight per endpoint, across all workers.")
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(0),
              help="Requests per second per endpoint, across all workers (0: no limit).")
@click.option("--attempts", default=4, show_default=True, type=click.IntRange(1, 20),
              help="Tries per repository before it is recorded unscannable.")
@click.option("--hash", "hash_", is_flag=True,
              help="Read whole files to compute sha256 (default: published sha256 only).")
@click.option("--summary", "summary", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG plot of verdicts and bytes saved here.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def scan_cmd(repo_file: str | None, orgs: tuple[str, ...], registries: tuple[str, ...],
             prefixes: tuple[str, ...], depth: int, endpoint: str | None, out: str,
             run_name: str, cache: str | None, no_cache: bool, ray: str | None, workers: int,
             concurrency: int, rate: float, attempts: int, hash_: bool, summary: str | None,
             fmt: str) -> None:
    """Scan many repositories; a killed run resumes where it stopped when run again.

    Each file whose sha256 the Hub publishes and the verdict cache knows costs no byte;
    the rest is read with range requests. One row per repository and per file goes to
    OUT (Parquet, or PostgreSQL tables fleet_repos/fleet_files).
    """
    from mlwarden.fleet import (
        FleetInputError,
        FleetOptions,
        RepoTask,
        SinkError,
        from_file,
        from_hub,
        from_prefix,
        open_sink,
        run_fleet,
    )
    from mlwarden.fleet.progress import LiveProgress, line, write_summary_png
    from mlwarden.fleet.run import stats_json
    from mlwarden.scan.sources.polite import Politeness

    if not (repo_file or orgs or registries or prefixes):
        raise CliError("nothing to scan: give --repos, --org, --registry or --prefix")
    tasks: list[RepoTask] = []
    try:
        if repo_file:
            tasks.extend(from_file(Path(repo_file), endpoint))
        for org in orgs:
            tasks.extend(from_hub(org, endpoint))
        for url in registries:
            tasks.extend(from_hub(None, url.rstrip("/")))
        for p in prefixes:
            tasks.extend(from_prefix(p, depth))
    except FleetInputError as exc:
        raise CliError(str(exc)) from None
    cache_url = None
    if not no_cache:
        from mlwarden.scancache import ScanCache
        from mlwarden.store.errors import StoreError

        try:
            c = ScanCache(cache)  # creates the table once, before workers race to
            cache_url = c.url.removeprefix("sqlite:///") if c.url.startswith("sqlite") \
                else c.url
            c.close()
        except StoreError as exc:
            raise CliError(str(exc)) from None
    options = FleetOptions(workers=workers, ray=ray, cache_url=cache_url,
                           politeness=Politeness(concurrency=concurrency, rate=rate),
                           attempts=attempts, hash="always" if hash_ else "never")
    try:
        sink = open_sink(out, run_name)
    except SinkError as exc:
        raise CliError(str(exc)) from None
    live = fmt == "table" and sys.stderr.isatty()
    try:
        if live:
            with LiveProgress() as lp:
                stats = run_fleet(tasks, sink, options, lp.update)
        else:
            stats = run_fleet(tasks, sink, options)
    except (SinkError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    finally:
        sink.close()
    if summary:
        write_summary_png(stats, Path(summary))
    if fmt == "json":
        sys.stdout.write(stats_json(stats))
    else:
        click.echo(line(stats) + (f"; {stats.skipped} already done" if stats.skipped else ""))
        click.echo(f"results: {out}" + (f"; summary plot: {summary}" if summary else ""))
