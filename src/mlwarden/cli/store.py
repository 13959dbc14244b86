"""``mlwarden store info | gc | migrate``: maintenance of the model store."""

from __future__ import annotations

import json
import sys
import time

import click

from mlwarden.cli.errors import CliError
from mlwarden.cli.registry import _BLOBS, _DB, _S3_ENDPOINT, _STORE, _open_store, _table


def _duration(text: str) -> float:
    from mlwarden.cli.registry import parse_when

    if text.strip() in ("0", "0s"):
        return 0.0
    return max(0.0, time.time() - parse_when(text, future=False))


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@click.group()
def store() -> None:
    """Inspect the store, collect unreferenced blobs, move blobs to another backend."""


@store.command("info")
@_STORE
@_DB
@_BLOBS
@_S3_ENDPOINT
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def info(store_path: str, db_url: str | None, blobs_url: str | None, s3_endpoint: str | None,
         fmt: str) -> None:
    """Where the metadata and blobs are, and how much the store holds."""
    with _open_store(store_path, db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint) as s:
        counts = {t: int(s.db.read(f"SELECT count(*) FROM {t}")[0][0])
                  for t in ("repos", "commits", "tokens", "audit")}
        refs = s.db.read("SELECT count(DISTINCT sha256), coalesce(sum(size), 0) FROM "
                         "(SELECT DISTINCT sha256, size FROM files) f")
        doc = {"store": store_path, "database": s.db.dialect,
               "database_url": s.db.url.split("@")[-1] if s.db.dialect != "sqlite"
               else s.db.url,
               "blobs": s.blobs.kind, "blobs_url": s.blobs.url.split("?", 1)[0],
               "coordination": s.coordination.kind, **counts,
               "referenced_blobs": int(refs[0][0]), "referenced_bytes": int(refs[0][1])}
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _table("store", ["field", "value"], [[k, v] for k, v in doc.items()])


@store.command("gc")
@_STORE
@_DB
@_BLOBS
@_S3_ENDPOINT
@click.option("--grace", default="1h", show_default=True,
              help="Keep unreferenced blobs younger than this (30m, 1h, 2d): imports in "
                   "flight are also protected by their leases.")
@click.option("--upload-grace", default="1d", show_default=True,
              help="Remove temporary uploads (abandoned multipart uploads, files of "
                   "killed writers) older than this.")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def gc(store_path: str, db_url: str | None, blobs_url: str | None, s3_endpoint: str | None,
       grace: str, upload_grace: str, dry_run: bool, fmt: str) -> None:
    """Remove blobs that no commit references (and stale uploads and staging dirs)."""
    from mlwarden.store.coordination import LockTimeout
    from mlwarden.store.gc import collect

    grace_s = _duration(grace)
    with _open_store(store_path, db_url, blobs_url=blobs_url, s3_endpoint=s3_endpoint) as s:
        try:
            res = collect(s, grace_s, dry_run,
                          progress=(lambda m: click.echo(m, err=True)) if fmt == "table"
                          else None, upload_grace=_duration(upload_grace))
        except LockTimeout:
            raise CliError("another gc or migration is running on this store") from None
    if fmt == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        verb = "would remove" if dry_run else "removed"
        now = time.time()
        rows: list[list[object]] = [[b.sha256, _human(b.size), f"{(now - b.modified) / 3600:.1f} h"]
                for b in res.removed]
        rows += [[f"upload {u.name}", _human(u.size), "-"] for u in res.uploads]
        rows += [[f"staging {d}", "-", "-"] for d in res.stages]
        if rows:
            _table(f"store gc ({verb})", ["blob", "size", "age"], rows)
        click.echo(f"{verb} {len(res.removed)} blob(s), {len(res.uploads)} upload(s), "
                   f"{len(res.stages)} staging dir(s): {_human(res.bytes_freed)}; kept "
                   f"{res.referenced} referenced, {res.young} younger than the grace period"
                   + (f", {res.rescued} referenced meanwhile" if res.rescued else ""),
                   err=True)
    if res.errors:
        for e in res.errors:
            click.echo(f"mlwarden: {e}", err=True)
        sys.exit(1)


@store.command("migrate")
@_STORE
@_DB
@_S3_ENDPOINT
@click.option("--to", "target", required=True,
              help="New blob location: s3://BUCKET/PREFIX[?endpoint=...] or file:///PATH.")
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Blobs copied in parallel.")
@click.option("--delete-source", is_flag=True,
              help="After the switch (and a delay for serving processes to follow), delete "
                   "the blobs from the old location.")
@click.option("--switch-delay", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to wait before --delete-source removes anything.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def migrate(store_path: str, db_url: str | None, s3_endpoint: str | None, target: str,
            workers: int, delete_source: bool, switch_delay: float, fmt: str) -> None:
    """Move the blobs to another backend while the registry keeps serving.

    Every blob is verified against its sha256 as it is copied; the location recorded in
    the database changes only once everything referenced is there, and serving
    processes follow within a second.
    """
    from mlwarden.store.coordination import LockTimeout
    from mlwarden.store.migrate import migrate as run

    with _open_store(store_path, db_url, s3_endpoint=s3_endpoint) as s:
        try:
            res = run(s, target, s3_endpoint=s3_endpoint, workers=workers,
                      delete_source=delete_source, switch_delay=switch_delay,
                      progress=(lambda m: click.echo(m, err=True)) if fmt == "table"
                      else None)
        except LockTimeout:
            raise CliError("another migration or gc is running on this store") from None
    if fmt == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
        return
    click.echo(f"blobs now at {res.target.split('?', 1)[0]}: copied {res.copied} "
               f"({_human(res.bytes_copied)}), {res.already_there} already there"
               + (f", {res.deleted_from_source} removed from the old location"
                  if delete_source else "; the old location is untouched"), err=True)
