"""``mlwarden import | serve | token | audit | approve``: the private model registry."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from mlwarden.cli.errors import CliError
from mlwarden.report.model import Verdict

if TYPE_CHECKING:
    import socket

    from mlwarden.store import Store

_STORE = click.option("--store", "store_path", required=True, envvar="MLWARDEN_STORE",
                      type=click.Path(file_okay=False),
                      help="Store directory (env MLWARDEN_STORE).")
_DB = click.option("--db", "db_url", envvar="MLWARDEN_DB", default=None,
                   help="Metadata database URL: sqlite:///PATH (default STORE/meta.db) or "
                        "postgresql://... (env MLWARDEN_DB).")
_EXIT_FOR = {Verdict.MALICIOUS: 1, Verdict.UNSCANNABLE: 2, Verdict.SUSPICIOUS: 3}


@contextmanager
def _open_store(path: str, db_url: str | None, create: bool = False) -> Iterator[Store]:
    from mlwarden.store import Store, StoreError

    try:
        store = Store.open(path, db_url, create=create)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    try:
        yield store
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()


def parse_when(text: str, future: bool) -> float:
    """``30d``, ``12h``, ``15m`` (relative to now) or an ISO date/time (UTC if naive)."""
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if m:
        secs = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400,
                                  "w": 604800}[m.group(2)]
        return time.time() + secs if future else time.time() - secs
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"cannot read time {text!r}: use 30d, 12h, 15m or an ISO date") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


@click.command("import")
@click.argument("local_dir", type=click.Path(file_okay=False))
@click.option("--repo", required=True, help="Repository id ORG/NAME.")
@_STORE
@_DB
@click.option("--branch", default="main", show_default=True,
              help="Branch that moves to this commit when it is approved.")
@click.option("--tag", "tags", multiple=True,
              help="Tag to set when the commit is approved (repeatable).")
@click.option("--message", "-m", default="", help="Commit message.")
@click.option("--policy", type=click.Choice(["default", "strict", "malicious-only"]),
              default="default", show_default=True,
              help="default refuses malicious or unscannable files; strict also suspicious.")
@click.option("--approve", "approve_now", is_flag=True,
              help="Approve the new commit at once (an explicit, logged approval).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="How to show the scan report.")
def import_cmd(local_dir: str, repo: str, store_path: str, db_url: str | None, branch: str,
               tags: tuple[str, ...], message: str, policy: str, approve_now: bool,
               fmt: str) -> None:
    """Scan LOCAL_DIR and admit it into the store as a new commit of ORG/NAME.

    The commit is served only once approved (`mlwarden approve`, or --approve here).
    A directory that fails the policy is refused: the scan report is shown and the exit
    status is 1 (malicious), 2 (unscannable) or 3 (suspicious).
    """
    from mlwarden.registry.importer import import_directory
    from mlwarden.report.render import render_table, to_json

    with _open_store(store_path, db_url, create=True) as store:
        result = import_directory(store, local_dir, repo, branch=branch,
                                  message=message, tags=tags, policy=policy,
                                  approve=approve_now)
    if result.commit is None:
        if fmt == "json":
            sys.stdout.write(to_json(result.report))
        else:
            render_table(result.report, sys.stdout)
        worst = Verdict.worst(f.verdict for f in result.blocked)
        click.echo(f"mlwarden: refused: {len(result.blocked)} file(s) fail the "
                   f"{policy!r} policy (worst: {worst.value}); nothing was imported",
                   err=True)
        sys.exit(_EXIT_FOR.get(worst, 1))
    c = result.commit
    if fmt == "json":
        sys.stdout.write(json.dumps({"repo": repo, "commit": c.id, "approved": c.approved,
                                     "branch": c.branch, "tags": list(c.requested_tags),
                                     "scan": result.report.summary()}, indent=2) + "\n")
    else:
        click.echo(c.id)
        state = "approved and served" if c.approved else \
            f"pending approval: mlwarden approve --store {store_path} {repo} {c.id[:12]}"
        click.echo(f"{repo}: {len(result.report.files)} file(s) scanned "
                   f"({result.report.verdict.value}); commit {state}", err=True)


@click.command()
@click.argument("repo")
@click.argument("rev")
@_STORE
@_DB
@click.option("--tag", "tags", multiple=True, help="Point this tag at the commit (repeatable).")
@click.option("--note", default="", help="Why: recorded in the approval log.")
@click.option("--by", "actor", default=None, help="Approver name (default: login name).")
@click.option("--revoke", is_flag=True, help="Withdraw approval instead: the commit and "
              "refs pointing at it disappear from the registry.")
@click.option("--gated/--not-gated", default=None,
              help="Also mark the repository gated (no anonymous access) or not.")
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Policy whose review rules apply (two-person-review); default: "
                   "mlwarden.toml / pyproject.toml here.")
@click.option("--refuse", is_flag=True, help="Refuse the pending commit for good (--note "
              "says why); it is never served.")
def approve(repo: str, rev: str, store_path: str, db_url: str | None, tags: tuple[str, ...],
            note: str, actor: str | None, revoke: bool, gated: bool | None,
            policy_path: str | None, refuse: bool) -> None:
    """Approve commit REV of REPO for serving (or --revoke it). Every change is logged.

    REV is a branch, a tag, a full commit id or a unique prefix of one. Approval moves
    the branch the commit was imported for, and the tags given at import or here. Under
    two-person review (policy, or recorded with a pushed commit) each call adds one
    reviewer's approval; the commit is served after the second distinct one.
    """
    from mlwarden.policy import PolicyError, load_policy
    from mlwarden.registry import review
    from mlwarden.store.push import PushStore
    from mlwarden.util.actor import default_actor

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    who = actor or default_actor()
    with _open_store(store_path, db_url) as store:
        if revoke:
            c = store.revoke(repo, rev, actor=actor, note=note)
            click.echo(f"revoked {repo}@{c.id}")
        elif refuse:
            st = review.refuse(PushStore.open(store), repo, rev, actor=who, identity=who,
                               note=note, policy=policy)
            click.echo(f"refused {repo}@{st.commit.id}")
        else:
            st = review.approve(PushStore.open(store), repo, rev, actor=who, identity=who,
                                note=note, tags=tags, policy=policy)
            c = st.commit
            if st.state != "approved":
                click.echo(f"approval by {who} recorded for {repo}@{c.id}: {st.missing} more "
                           "from another reviewer needed (two-person review)")
            else:
                moved = ", ".join([c.branch, *dict.fromkeys([*c.requested_tags, *tags])])
                click.echo(f"approved {repo}@{c.id} ({moved})")
        if gated is not None:
            store.set_gated(repo, gated, actor)
            click.echo(f"{repo}: {'gated' if gated else 'not gated'}")


@click.command()
@_STORE
@_DB
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-anonymous", is_flag=True,
              help="Serve approved, non-gated repositories without a token.")
@click.option("--header-timeout", default=10.0, show_default=True, type=float,
              help="Seconds a client has to send a complete request head.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Policy for pushed commits (default: mlwarden.toml / pyproject.toml here, "
                   "else built-in defaults).")
@click.option("--public-url", default=None,
              help="Base URL clients reach this server at (e.g. https://models.example behind "
                   "a TLS proxy): used in upload URLs and for Secure console cookies.")
@click.option("--lfs-uploads", is_flag=True,
              help="Answer preupload like the Hub (LFS for weights) so large files stream "
                   "through the LFS batch API; clients must then set HF_HUB_DISABLE_XET=1.")
@click.option("--read-only", is_flag=True, help="No write API (pushes); the console stays.")
@click.option("--no-console", is_flag=True, help="Do not serve the review console at /ui.")
def serve(store_path: str, db_url: str | None, host: str, port: int, allow_anonymous: bool,
          header_timeout: float, log_level: str, policy_path: str | None,
          public_url: str | None, lfs_uploads: bool, read_only: bool, no_console: bool) -> None:
    """Serve approved models over the Hugging Face Hub HTTP API, accept pushes into the
    airlock, and serve the review console at /ui.

    Point clients at it with HF_ENDPOINT=http://HOST:PORT and HF_TOKEN=<mlwarden token>.
    """
    import uvicorn

    from mlwarden.policy import PolicyError, load_policy
    from mlwarden.registry.api import WriteSettings, routes
    from mlwarden.registry.app import Settings, create_app
    from mlwarden.registry.server import ServerLimits, make_config

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    if public_url is not None and not re.fullmatch(r"https?://[^/\s]+(/[^\s]*)?", public_url):
        raise CliError(f"--public-url {public_url!r}: expected http(s)://host[:port][/path]")
    write = WriteSettings(enabled=not read_only, console=not no_console, policy=policy,
                          upload_mode="lfs" if lfs_uploads else "inline",
                          public_url=public_url)
    with _open_store(store_path, db_url) as store:
        app = create_app(store, Settings(allow_anonymous=allow_anonymous),
                         routes=routes(store, write))
        config = make_config(app, host, port, ServerLimits(header_timeout=header_timeout),
                             log_level=log_level)
        sock = _listen_socket(host, port)
        bound = sock.getsockname()[1]
        click.echo(f"mlwarden registry on http://{host}:{bound} "
                   f"({'anonymous reads allowed' if allow_anonymous else 'token required'}; "
                   f"{'read-only' if read_only else 'pushes enter the airlock'}"
                   f"{'' if no_console else f'; review console at http://{host}:{bound}/ui'})",
                   err=True)
        uvicorn.Server(config).run(sockets=[sock])


def _listen_socket(host: str, port: int) -> socket.socket:
    """Bind before uvicorn starts: its own bind failure exits 3, which reads as "suspicious".

    Binding here gives a one-line error with exit 4, and the real port when --port is 0.
    """
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@click.group()
def token() -> None:
    """Create, list and revoke registry access tokens."""


@token.command("create")
@_STORE
@_DB
@click.option("--scope", "scopes", multiple=True, required=True,
              help="ORG:ACCESS, ORG/NAME:ACCESS or *:ACCESS (repeatable); ACCESS is read, "
                   "write (push; includes read) or approve (review; includes read); *:admin "
                   "grants everything. Package index: pkg:PATTERN:read or "
                   "pkg:PATTERN:write (upload).")
@click.option("--name", default=None, help="Label shown in the audit log.")
@click.option("--owner", default=None, help="The person the token acts for (two-person "
              "review tells reviewers and pushers apart by owner); default: the name.")
@click.option("--expires", default=None, help="Lifetime (30d, 12h) or an ISO date.")
def token_create(store_path: str, db_url: str | None, scopes: tuple[str, ...],
                 name: str | None, owner: str | None, expires: str | None) -> None:
    """Print a new token once; only its salted hash is stored."""
    from mlwarden.store.push import PushStore

    expires_at = parse_when(expires, future=True) if expires else None
    with _open_store(store_path, db_url, create=True) as store:
        info, text = store.create_token(name or "token", scopes,
                                        expires_at)
        if owner:
            PushStore.open(store).set_owner(info.id, owner)
    click.echo(text)
    from mlwarden.store.model import iso

    until = f", expires {iso(expires_at)}" if expires_at else ""
    click.echo(f"token {info.id} ({info.name}): {' '.join(map(str, info.scopes))}{until}. "
               "Store it now: it cannot be shown again.", err=True)


@token.command("list")
@_STORE
@_DB
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def token_list(store_path: str, db_url: str | None, fmt: str) -> None:
    """List tokens (never their secrets)."""
    from mlwarden.store.model import iso

    with _open_store(store_path, db_url) as store:
        infos = store.tokens()
    now = time.time()
    rows: list[dict[str, object]] = [
        {"id": t.id, "name": t.name, "scopes": [str(s) for s in t.scopes],
             "created": iso(t.created_at),
             "expires": iso(t.expires_at) if t.expires_at else None,
             "state": "active" if t.active(now) else
             ("revoked" if t.revoked_at else "expired")} for t in infos]
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    _table("tokens", ["id", "name", "scopes", "created", "expires", "state"],
           [[t.id, t.name, " ".join(map(str, t.scopes)), r["created"], r["expires"] or "-",
             r["state"]] for t, r in zip(infos, rows, strict=True)])


@token.command("revoke")
@click.argument("id_or_name")
@_STORE
@_DB
def token_revoke(id_or_name: str, store_path: str, db_url: str | None) -> None:
    """Revoke a token by id or name; it stops working on the next request."""
    with _open_store(store_path, db_url) as store:
        n = store.revoke_token(id_or_name)
    if not n:
        raise CliError(f"no active token {id_or_name!r}")
    click.echo(f"revoked {n} token(s)")


@click.command()
@_STORE
@_DB
@click.option("--repo", default=None, help="Only this repository.")
@click.option("--since", default=None, help="Only entries newer than this (1h, 7d, ISO date).")
@click.option("--action", default=None,
              help="Only this action (download, resolve, denied, approve, move-tag, ...).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the newest N.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def audit(store_path: str, db_url: str | None, repo: str | None, since: str | None,
          action: str | None, limit: int | None, fmt: str) -> None:
    """Show the audit log: who fetched what, at which commit, how many bytes; denials;
    approvals and ref moves."""
    since_ts = parse_when(since, future=False) if since else None
    with _open_store(store_path, db_url) as store:
        entries = store.audit(repo, since_ts, action, limit)
    if fmt == "json":
        sys.stdout.write(json.dumps([e.to_dict() for e in entries], indent=2) + "\n")
        return
    _table("audit", ["when", "actor", "client", "action", "repo", "commit", "path", "status",
                     "bytes", "detail"],
           [[d["at"], e.actor, e.client, e.action, e.repo or "-", (e.commit or "-")[:12],
             e.path or "-", e.status, e.bytes, e.detail]
            for e, d in ((e, e.to_dict()) for e in entries)])


def _table(title: str, columns: list[str], rows: list[list[object]]) -> None:
    from rich.table import Table

    from mlwarden.report.render import make_console

    t = Table(title=title)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(str(x) for x in r))
    make_console().print(t)
