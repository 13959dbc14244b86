"""``mlwarden log show | verify | export | append | sync``: the signed approval log.

Exit status of ``log verify``: 0 intact, 1 tampering detected, 4 bad input or usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mlwarden.cli.errors import CliError, write_output

_STORE = click.option("--store", "store_path", required=True, envvar="MLWARDEN_STORE",
                      type=click.Path(file_okay=False),
                      help="Store directory (env MLWARDEN_STORE).")
_KEY = click.option("--key", "key", envvar="MLWARDEN_LOG_KEY", type=click.Path(dir_okay=False),
                    help="Ed25519 signing key outside the store (env MLWARDEN_LOG_KEY; default "
                         "~/.config/mlwarden/approvals-ed25519.pem, created 0600 if missing).")
_CHECKPOINT = click.option("--checkpoint", type=click.Path(dir_okay=False),
                           envvar="MLWARDEN_LOG_CHECKPOINT",
                           help="Head checkpoint outside the store (default: beside the key).")


@contextmanager
def _errors() -> Iterator[None]:
    from mlwarden.approvals import ApprovalLogError

    try:
        yield
    except ApprovalLogError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"{exc.filename or 'log'}: {exc.strerror or exc}") from exc


def _existing_store(path: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise CliError(f"{p}: no such store directory")
    return p


def _open_db_store(path: Path) -> Any:
    """The store's database, when this directory is a full mlwarden store."""
    try:
        from mlwarden.store import Store, StoreError
    except ModuleNotFoundError:
        return None
    from mlwarden.store.store import is_store

    if not is_store(path):
        return None
    try:
        return Store.open(path, create=False)
    except StoreError as exc:
        raise CliError(str(exc)) from exc


@click.group()
def log() -> None:
    """The hash-chained, signed approval log of a store."""


@log.command("show")
@_STORE
@click.option("--kind", "kinds", multiple=True, help="Only entries of this kind (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def show(store_path: str, kinds: tuple[str, ...], fmt: str) -> None:
    """List log entries (not verified: use `log verify`)."""
    from mlwarden.approvals import read_log

    with _errors():
        entries = [e for e in read_log(_existing_store(store_path))
                   if not kinds or e.kind in kinds]
    if fmt == "json":
        for e in entries:
            sys.stdout.write(json.dumps(e.to_dict(), sort_keys=True) + "\n")
        return
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"approval log of {store_path}")
    for col in ("seq", "time", "kind", "subject", "actor", "key", "hash"):
        t.add_column(col)
    for e in entries:
        when = dt.datetime.fromtimestamp(e.time, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(str(e.seq), when, e.kind, e.subject, e.actor, e.key_id[:8], e.hash[:12])
    Console().print(t)


@log.command("verify")
@_STORE
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Pinned Ed25519 public key(s) (PEM). Default: the copy in the store.")
@_CHECKPOINT
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def verify(store_path: str, public_keys: tuple[str, ...], checkpoint: str | None,
           fmt: str) -> None:
    """Check every entry's hash, chain link and signature, the head file and checkpoint,
    and that the store database still agrees with the events mirrored into the log."""
    from mlwarden.approvals import cross_check, read_log, verify_log

    root = _existing_store(store_path)
    with _errors():
        res = verify_log(root, [Path(p) for p in public_keys] or None, checkpoint)
        problems, warnings = list(res.problems), list(res.warnings)
        store = _open_db_store(root) if res.ok else None
        if store is not None:
            try:
                more_problems, more_warnings = cross_check(store, read_log(root))
            finally:
                store.close()
            problems += more_problems
            warnings += more_warnings
    ok = not problems
    if fmt == "json":
        sys.stdout.write(json.dumps({**res.to_dict(), "ok": ok, "problems": problems,
                                     "warnings": warnings}) + "\n")
    else:
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if ok:
            click.echo(f"log intact: {res.entries} entries, head {res.head or '-'}")
        else:
            for problem in problems:
                click.echo(f"TAMPERED: {problem}", err=True)
    sys.exit(0 if ok else 1)


@log.command("export")
@_STORE
@click.option("--format", "fmt", type=click.Choice(["in-toto"]), default="in-toto",
              show_default=True)
@click.option("--kind", "kinds", multiple=True, help="Only entries of this kind (repeatable).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here atomically.")
def export(store_path: str, fmt: str, kinds: tuple[str, ...], output: str | None) -> None:
    """Export entries as in-toto Statement v1 JSON lines (promotions as SLSA provenance)."""
    from mlwarden.approvals import read_log
    from mlwarden.approvals.intoto import export_lines

    with _errors():
        text = "".join(export_lines(read_log(_existing_store(store_path)), set(kinds)))
    if output is None:
        sys.stdout.write(text)
        return
    write_output(output, text)


@log.command("append")
@_STORE
@click.option("--kind", required=True,
              type=click.Choice(["promotion", "exception", "tag-move", "approval",
                                 "revocation"]))
@click.option("--subject", required=True, help="What the entry is about (ORG/NAME@COMMIT...).")
@click.option("--details", default="{}", help="A JSON object.")
@click.option("--actor", help="Who (default: the current user).")
@_KEY
@_CHECKPOINT
def append_cmd(store_path: str, kind: str, subject: str, details: str, actor: str | None,
               key: str | None, checkpoint: str | None) -> None:
    """Append one signed entry (for decisions made outside mlwarden's own commands)."""
    from mlwarden.approvals import append

    try:
        d = json.loads(details)
    except ValueError as exc:
        raise CliError(f"--details is not JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise CliError("--details must be a JSON object")
    with _errors():
        e = append(_existing_store(store_path), kind, subject, d, actor=actor, key=key,
                   checkpoint=checkpoint)
    click.echo(f"appended #{e.seq} {e.kind} {e.subject} ({e.hash[:12]})")


@log.command("sync")
@_STORE
@_KEY
@_CHECKPOINT
def sync(store_path: str, key: str | None, checkpoint: str | None) -> None:
    """Mirror the store database's approval events into the signed log."""
    from mlwarden.approvals import record_store_events

    root = _existing_store(store_path)
    store = _open_db_store(root)
    if store is None:
        raise CliError(f"{root}: not an mlwarden store with a database")
    try:
        with _errors():
            added = record_store_events(store, key=key, checkpoint=checkpoint)
    finally:
        store.close()
    click.echo(f"mirrored {len(added)} store event(s) into the log")
