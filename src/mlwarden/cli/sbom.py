"""``mlwarden sbom``: a validated ML-BOM of a model directory or a store commit."""

from __future__ import annotations

import re
import sys

import click

from mlwarden.cli.errors import CliError, write_output


@click.command()
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["cyclonedx", "spdx"]), default="cyclonedx",
              show_default=True, help="CycloneDX 1.6 JSON or SPDX 3.0.1 JSON-LD.")
@click.option("--store", "store_path", type=click.Path(file_okay=False),
              help="Read MODEL as ORG/NAME@REVISION from this store.")
@click.option("--environment", is_flag=True,
              help="Include this Python environment's distributions as libraries.")
@click.option("--lockfile", "lockfiles", multiple=True, type=click.Path(dir_okay=False),
              help="Include a requirements/uv.lock/poetry.lock/pylock.toml (repeatable).")
@click.option("--name", help="Hub id ORG/NAME of a directory (for the purl).")
@click.option("--revision", help="Commit id of a directory (for the purl).")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write here (atomically) instead of stdout.")
def sbom(model: str, fmt: str, store_path: str | None, environment: bool,
         lockfiles: tuple[str, ...], name: str | None, revision: str | None,
         output: str | None) -> None:
    """Write an ML-BOM of MODEL: files with sha256 and scan verdicts, model card, datasets,
    base model, and optionally the Python environment or lock files.

    The BOM is validated (CycloneDX: the strict 1.6 JSON schema; SPDX: a full read-back)
    before it is written; an invalid BOM is an error (exit 4), never output.
    """
    from mlwarden.sbom import SbomError, build_sbom

    if store_path and (name or revision):
        raise CliError("--name/--revision describe a directory; a store commit names itself")
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", name):
        raise CliError(f"--name {name!r} is not a Hub id (ORG/NAME)")
    if revision is not None and not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise CliError("--revision must be a 40-hex commit id")
    try:
        text = build_sbom(model, fmt=fmt, store=store_path, name=name, commit=revision,
                          environment=environment, lockfiles=lockfiles)
    except SbomError as exc:
        raise CliError(str(exc)) from exc
    if output is None:
        sys.stdout.write(text)
        return
    write_output(output, text)
    click.echo(f"wrote {fmt} BOM of {model} to {output}", err=True)
