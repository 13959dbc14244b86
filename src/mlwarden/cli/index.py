"""``mlwarden index ...``: the package airlock (a private Python index)."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden.cli.errors import CliError, write_output
from mlwarden.cli.registry import _DB, _STORE, _listen_socket, _open_store

if TYPE_CHECKING:
    from mlwarden.index.model import IndexFile
    from mlwarden.index.service import IndexService
    from mlwarden.report.model import Report

_POLICY = click.option("--policy", "policy_path", envvar="MLWARDEN_INDEX_POLICY", default=None,
                       type=click.Path(dir_okay=False),
                       help="Index policy file (TOML; env MLWARDEN_INDEX_POLICY; default "
                            "STORE/index-policy.toml when present).")
_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]),
                       default="table", show_default=True)


@contextmanager
def _service(store_path: str, db_url: str | None, policy_path: str | None,
             create: bool = False) -> Iterator[IndexService]:
    from mlwarden.index.names import NameError_
    from mlwarden.index.policy import POLICY_NAME, Policy, PolicyError
    from mlwarden.index.service import IndexError_, IndexService

    if policy_path is None and (Path(store_path) / POLICY_NAME).is_file():
        policy_path = str(Path(store_path) / POLICY_NAME)
    try:
        policy = Policy.load(policy_path)
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    with _open_store(store_path, db_url, create=create) as store:
        service = IndexService(store, policy)
        try:
            yield service
        except IndexError_ as exc:
            raise CliError(exc.message) from exc
        except NameError_ as exc:
            raise CliError(str(exc)) from exc
        finally:
            service.close()


def _report(files: list[IndexFile], command: str) -> Report:
    from mlwarden.report.model import FileResult, Report

    return Report(command, tuple(
        FileResult(f.filename, f"{f.state.value} ({f.origin.value})", f.verdict, f.size,
                   f.sha256, f.findings) for f in files))


def _show(files: list[IndexFile], command: str, fmt: str) -> None:
    from mlwarden.report.render import render_table, to_json

    report = _report(files, command)
    if fmt == "json":
        doc = json.loads(to_json(report))
        for entry, f in zip(doc["files"], files, strict=True):
            entry.update(project=f.project, version=f.version, state=f.state.value,
                         origin=f.origin.value, decided_by=f.decided_by,
                         hold_until=f.hold_until, yanked=f.yanked)
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render_table(report, sys.stdout, verbose=True)


@click.group()
def index() -> None:
    """A private Python package index that inspects every file before pip sees it.

    Internal packages are uploaded (twine, `index add`); public ones are pulled through
    from the upstream on demand, checked against the policy, verified and inspected.
    """


@index.command()
@_STORE
@_DB
@_POLICY
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-anonymous", is_flag=True,
              help="Let clients without a token install (uploads always need one).")
@click.option("--confusion-every", default="6h", show_default=True,
              help="How often to sweep the upstream project list for internal names "
                   "(0 disables).")
@click.option("--header-timeout", default=10.0, show_default=True, type=float)
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(store_path: str, db_url: str | None, policy_path: str | None, host: str, port: int,
          allow_anonymous: bool, confusion_every: str, header_timeout: float,
          log_level: str) -> None:
    """Serve the simple API (PEP 503/691) and the upload API on HOST:PORT.

    pip: --index-url http://HOST:PORT/simple/   twine: --repository-url
    http://HOST:PORT/legacy/
    """
    import uvicorn

    from mlwarden.index.app import IndexSettings, create_index_app
    from mlwarden.index.policy import PolicyError, parse_duration
    from mlwarden.registry.server import ServerLimits, make_config

    try:
        every = parse_duration(confusion_every, "--confusion-every")
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    with _service(store_path, db_url, policy_path, create=True) as service:
        app = create_index_app(service, IndexSettings(allow_anonymous=allow_anonymous))
        config = make_config(app, host, port, ServerLimits(header_timeout=header_timeout),
                             log_level=log_level)
        sock = _listen_socket(host, port)
        bound = sock.getsockname()[1]
        stop = threading.Event()
        if every > 0 and service.policy.internal:
            threading.Thread(target=_sweeper, args=(service, every, stop), daemon=True,
                             name="mlwarden-confusion").start()
        click.echo(f"mlwarden index on http://{host}:{bound}/simple/ (upstream "
                   f"{service.policy.upstream_url}; policy {service.policy.source}; "
                   f"{'anonymous installs allowed' if allow_anonymous else 'token required'})",
                   err=True)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            stop.set()


def _sweeper(service: IndexService, every: float, stop: threading.Event) -> None:
    from mlwarden.index.confusion import sweep
    from mlwarden.index.upstream import UpstreamError

    while not stop.is_set():
        try:
            new = sweep(service).meta.get("new")
            for name in new if isinstance(new, list) else []:
                click.echo(f"mlwarden index: dependency confusion: {name} exists upstream",
                           err=True)
        except (UpstreamError, Exception) as exc:  # keep serving; the next sweep retries
            click.echo(f"mlwarden index: confusion sweep failed: {exc}", err=True)
        stop.wait(every)


@index.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@_STORE
@_DB
@_POLICY
@click.option("--by", "actor", default=None, help="Who adds them (default: login name).")
@_FORMAT
def add(files: tuple[str, ...], store_path: str, db_url: str | None, policy_path: str | None,
        actor: str | None, fmt: str) -> None:
    """Add internal wheels or sdists (names in the internal namespace) to the index."""
    from mlwarden.index.model import State

    out = []
    with _service(store_path, db_url, policy_path, create=True) as service:
        for f in files:
            out.append(service.add_internal(Path(f), actor=actor))
    _show(out, "index add", fmt)
    if any(f.state is not State.ADMITTED for f in out):
        sys.exit(1)


@index.command()
@_STORE
@_DB
@_POLICY
@_FORMAT
def pending(store_path: str, db_url: str | None, policy_path: str | None, fmt: str) -> None:
    """Files held for review (inspection findings, fresh releases, advisories)."""
    with _service(store_path, db_url, policy_path) as service:
        files = service.pending()
    _show(files, "index pending", fmt)


@index.command("list")
@click.argument("project", required=False)
@_STORE
@_DB
@_POLICY
@click.option("--state", type=click.Choice(["admitted", "held", "refused"]), default=None)
@_FORMAT
def list_cmd(project: str | None, store_path: str, db_url: str | None,
             policy_path: str | None, state: str | None, fmt: str) -> None:
    """Every decision the index made (or those of PROJECT), with the findings behind it."""
    from mlwarden.index.names import canonical

    with _service(store_path, db_url, policy_path) as service:
        files = service.storage.files(canonical(project)) if project \
            else service.storage.all_files()
    _show([f for f in files if state is None or f.state.value == state], "index list", fmt)


def _decision(verb: str) -> click.Command:
    @click.command(verb)
    @click.argument("specs", nargs=-1, required=True)
    @_STORE
    @_DB
    @_POLICY
    @click.option("--note", default="", help="Why: recorded in the signed approval log.")
    @click.option("--by", "actor", default=None, help="Reviewer (default: login name).")
    def cmd(specs: tuple[str, ...], store_path: str, db_url: str | None,
            policy_path: str | None, note: str, actor: str | None, **kw: bool) -> None:
        with _service(store_path, db_url, policy_path) as service:
            for spec in specs:
                if verb == "approve":
                    done = service.approve(spec, actor=actor, note=note,
                                           override=kw.get("override", False))
                else:
                    done = service.refuse(spec, actor=actor, note=note)
                for f in done:
                    click.echo(f"{f.state.value}: {f.filename}")
    return cmd


approve = _decision("approve")
approve.help = ("Admit held files: SPEC is a filename or NAME==VERSION. Each decision is "
                "logged in the signed approval log. --override also admits files refused by "
                "policy or inspection (never hash mismatches or known-malicious ones).")
approve.params.append(click.Option(["--override"], is_flag=True,
                                   help="Also approve files the policy refused."))
refuse = _decision("refuse")
refuse.help = ("Refuse held files, or withdraw admitted ones (SPEC: filename or "
               "NAME==VERSION). Logged in the signed approval log.")
index.add_command(approve)
index.add_command(refuse)


@index.command()
@click.argument("spec")
@_STORE
@_DB
@_POLICY
@click.option("--reason", default="", help="Shown to clients (PEP 592 data-yanked).")
@click.option("--undo", is_flag=True, help="Un-yank.")
@click.option("--by", "actor", default=None)
def yank(spec: str, store_path: str, db_url: str | None, policy_path: str | None,
         reason: str, undo: bool, actor: str | None) -> None:
    """Yank an admitted release (PEP 592): exact pins still install, resolvers skip it."""
    with _service(store_path, db_url, policy_path) as service:
        for f in service.yank(spec, reason, actor=actor, undo=undo):
            click.echo(f"{'unyanked' if undo else 'yanked'}: {f.filename}")


@index.command()
@click.argument("requirements", type=click.Path(dir_okay=False))
@_STORE
@_DB
@_POLICY
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write here (atomically) instead of standard output.")
@click.option("--python-version", default=None,
              help="Resolve for this Python (markers, Requires-Python); default: this one.")
def lock(requirements: str, store_path: str, db_url: str | None, policy_path: str | None,
         output: str | None, python_version: str | None) -> None:
    """Resolve REQUIREMENTS against admitted files only; write every pin with its hashes.

    The result installs with `pip install --require-hashes -r FILE`.
    """
    from mlwarden.index import lock as lk

    with _service(store_path, db_url, policy_path) as service:
        try:
            pins = lk.lock(service, lk.read_requirements(requirements), python_version)
        except lk.LockError as exc:
            raise CliError(str(exc)) from exc
    text = lk.render(pins, os.path.basename(requirements))
    if output:
        write_output(output, text)
        click.echo(f"{len(pins)} pinned requirement(s) written to {output}", err=True)
    else:
        sys.stdout.write(text)


@index.command()
@_STORE
@_DB
@_POLICY
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]),
              default="table", show_default=True)
def confusion(store_path: str, db_url: str | None, policy_path: str | None, fmt: str) -> None:
    """Sweep the upstream's project list for internal names (dependency confusion).

    Exit status 1 when any internal name exists upstream.
    """
    from mlwarden.index.confusion import sweep
    from mlwarden.index.upstream import UpstreamError
    from mlwarden.report.render import render

    with _service(store_path, db_url, policy_path) as service:
        if not service.policy.internal:
            raise CliError("the policy names no internal namespace ([internal] names)")
        try:
            report = sweep(service)
        except UpstreamError as exc:
            raise CliError(f"cannot read the upstream project list: {exc}") from exc
    render(report, fmt, sys.stdout)
    sys.exit(1 if report.files else 0)
