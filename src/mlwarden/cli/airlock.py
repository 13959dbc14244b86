"""``mlwarden pull | verify | run | convert``: the airlock.

Exit status: 0 admitted / verified; 1 blocked by policy or scan, hostile upstream metadata,
or a verify security event; 4 bad input, network or disk errors (one line, no traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlwarden.cli.errors import CliError

if TYPE_CHECKING:
    from mlwarden.airlock.pull import PullResult
    from mlwarden.airlock.verify import VerifyResult
    from mlwarden.store import Store

EXIT_BLOCKED = 1

_STORE = click.option("--store", "store_path", required=True, envvar="MLWARDEN_STORE",
                      type=click.Path(file_okay=False),
                      help="Model store directory (env MLWARDEN_STORE).")
_DB = click.option("--db", "db_url", envvar="MLWARDEN_DB", default=None,
                   help="Store metadata database URL (env MLWARDEN_DB).")
_MANIFEST = click.option("--manifest", "manifest_path", default="model-manifest.yaml",
                         show_default=True, envvar="MLWARDEN_MANIFEST",
                         type=click.Path(dir_okay=False),
                         help="model-manifest.yaml to update/check (env MLWARDEN_MANIFEST).")
_ENDPOINT = click.option("--endpoint", default=None, envvar="MLWARDEN_UPSTREAM",
                         help="Upstream Hub or mirror URL (default https://huggingface.co; "
                              "env MLWARDEN_UPSTREAM).")


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Every expected failure becomes one line and exit 4."""
    from mlwarden.airlock.download import DiskError
    from mlwarden.airlock.upstream import UpstreamError
    from mlwarden.manifest import ManifestError
    from mlwarden.policy import PolicyError
    from mlwarden.store import StoreError
    from mlwarden.util.fs import LockedError

    try:
        yield
    except (UpstreamError, ManifestError, PolicyError, StoreError, LockedError) as exc:
        raise CliError(str(exc)) from None
    except DiskError as exc:
        raise CliError(f"cannot write the quarantine: {exc.strerror or exc} "
                       "(nothing was promoted; the quarantine was removed)") from None
    except OSError as exc:
        raise CliError(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename
                                                    else "")) from None


@contextmanager
def _store(path: str, db_url: str | None, create: bool) -> Iterator[Store]:
    from mlwarden.store import Store

    store = Store.open(path, db_url, create=create)
    try:
        yield store
    finally:
        store.close()


class _Task:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.id = 0
        self.total: float | None = 0
        self.fields = fields


class _NoProgress:
    """What rich's Progress would be with stderr not a terminal (disabled), without
    importing rich: ~20 ms of every scripted pull."""

    def __init__(self) -> None:
        self.tasks: list[_Task] = []

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, _description: str, total: float = 0, **fields: Any) -> int:
        t = _Task(fields)
        t.id, t.total = len(self.tasks), total
        self.tasks.append(t)
        return t.id

    def update(self, task: int, total: float | None = None, **fields: Any) -> None:
        t = self.tasks[task]
        if total is not None:
            t.total = total
        t.fields.update(fields)

    def advance(self, task: int, n: float) -> None:
        return None

    def stop(self) -> None:
        return None


def _progress() -> Any:
    if not sys.stderr.isatty():
        return _NoProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TextColumn("{task.fields[files]} file(s)"),
                    console=console, transient=True, disable=not console.is_terminal)


def _bar_class(progress: Any, task: Any) -> type:
    """A tqdm stand-in for huggingface_hub's http_get: one aggregated rich bar."""

    class Bar:
        def __init__(self, **kw: Any) -> None:
            total = kw.get("total")
            if total:
                t = progress.tasks[[x.id for x in progress.tasks].index(task)]
                progress.update(task, total=(t.total or 0) + total)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def update(self, n: int) -> None:
            progress.advance(task, n)

    return Bar


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _print_pull(result: PullResult, store_path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    out = sys.stdout
    console = Console(file=out, soft_wrap=False,
                      width=None if getattr(out, "isatty", lambda: False)() else 200)
    r = result.resolved
    how = f"{r.ref_kind} {r.ref} -> {r.commit}" if r.ref else f"commit {r.commit}"
    t = Table(title=f"mlwarden pull {r.repo_id} ({how})")
    for col in ("path", "size", "sha256", "upstream", "scan", "cache", "policy"):
        t.add_column(col, overflow="fold")
    for row in result.rows:
        style = {"clean": "green", "suspicious": "yellow", "unscannable": "magenta",
                 "malicious": "bold red"}[row.verdict.value]
        t.add_row(row.path, _human(row.size), row.sha256[:16] or "-",
                  ("lfs sha256 ok" if row.lfs else "git sha1 ok") if row.sha256 else "-",
                  f"[{style}]{row.verdict.value}[/]" if row.sha256 else "-",
                  "hit" if row.cached else "-",
                  ", ".join(row.decisions) or "ok")
    console.print(t)
    for d in result.policy.decisions:
        if d.action == "allow" and d.rule != "policy-exception-applied":
            continue
        where = f" [{d.path}]" if d.path else ""
        click.echo(f"  {d.action:5} {d.rule}{where}: {d.message}", err=True)
    if result.commit is None:
        reasons = sorted({d.rule for d in result.policy.blocking})
        click.echo(f"mlwarden: blocked: {r.repo_id}@{r.commit[:12]} did not pass the policy "
                   f"({result.policy.policy_source}): {', '.join(reasons)}; nothing was "
                   "promoted", err=True)
    else:
        click.echo(f"promoted {r.repo_id}@{r.commit} into {store_path} "
                   f"({len(result.rows)} files, {result.cached_files} from the scan cache); "
                   f"manifest {result.manifest} updated", err=True)


def _pull_json(result: PullResult) -> str:
    r = result.resolved
    doc = {"repo": r.repo_id, "revision": r.revision, "commit": r.commit, "ref": r.ref,
           "ref_kind": r.ref_kind, "admitted": result.commit is not None,
           "files": [{"path": x.path, "size": x.size, "sha256": x.sha256, "lfs": x.lfs,
                      "verdict": x.verdict.value, "cached": x.cached,
                      "decisions": list(x.decisions)} for x in result.rows],
           "decisions": [d.to_dict() for d in result.policy.decisions],
           "policy": result.policy.policy_source, "remote_code": list(result.remote_code),
           "scan": result.report.summary()}
    return json.dumps(doc, indent=2) + "\n"


@click.command()
@click.argument("repo_id")
@click.option("--revision", default=None, help="Commit id, tag or branch (default main).")
@_ENDPOINT
@_STORE
@_DB
@_MANIFEST
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Policy file (mlwarden.toml or pyproject.toml); default: found in the "
                   "current directory, else built-in defaults.")
@click.option("--token", default=None, envvar="MLWARDEN_UPSTREAM_TOKEN",
              help="Upstream token (env MLWARDEN_UPSTREAM_TOKEN). A stored Hugging Face "
                   "token is never sent implicitly.")
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Parallel downloads.")
@click.option("--scan-cache", "scan_cache", default=None, envvar="MLWARDEN_SCAN_CACHE",
              type=click.Path(file_okay=False), help="Scan cache directory.")
@click.option("--no-scan-cache", is_flag=True, help="Scan every file again.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def pull(repo_id: str, revision: str | None, endpoint: str | None, store_path: str,
         db_url: str | None, manifest_path: str, policy_path: str | None, token: str | None,
         workers: int, scan_cache: str | None, no_scan_cache: bool, fmt: str) -> None:
    """Pull ORG/NAME through quarantine, verification, scan and policy into the store.

    Files are downloaded into a quarantine inside the store, checked against the Hub's
    metadata (sha256/size for LFS files, git blob sha1 otherwise), scanned and judged by
    the policy; only then is the commit promoted (served by `mlwarden serve`) and pinned
    in the manifest. A blocked model exits 1 with the rule that blocked it.
    """
    from mlwarden.airlock.pull import PullOptions
    from mlwarden.airlock.pull import pull as do_pull
    from mlwarden.airlock.upstream import UpstreamRejected
    from mlwarden.policy import load_policy
    from mlwarden.scancache import ScanCache

    with _clean_errors():
        policy = load_policy(policy_path)
        cache = None if no_scan_cache else ScanCache(scan_cache)
        opts = PullOptions(repo_id, revision, endpoint, token, Path(manifest_path), workers)
        with _store(store_path, db_url, create=True) as store, _progress() as progress:
            task = progress.add_task(f"pull {repo_id}", total=0, files=0)

            def on_file(_: object) -> None:
                progress.update(task, files=progress.tasks[-1].fields["files"] + 1)

            try:
                result = do_pull(opts, store, policy, cache, _bar_class(progress, task),
                                 on_file)
            except UpstreamRejected as exc:
                progress.stop()
                where = f" [{exc.path}]" if exc.path else ""
                click.echo(f"mlwarden: rejected: {exc.rule.id}{where}: {exc.message}. "
                           f"({exc.rule.title}.) Nothing was promoted.", err=True)
                sys.exit(EXIT_BLOCKED)
    if fmt == "json":
        sys.stdout.write(_pull_json(result))
    else:
        _print_pull(result, store_path)
    if result.commit is None:
        if fmt == "json":
            reasons = sorted({d.rule for d in result.policy.blocking})
            click.echo(f"mlwarden: blocked: {', '.join(reasons)}", err=True)
        sys.exit(EXIT_BLOCKED)


def _print_verify(result: VerifyResult) -> None:
    from mlwarden.report.render import render_table

    render_table(result.report, sys.stdout)
    click.echo(f"verified {result.files_checked} file(s), {_human(result.bytes_hashed)} in "
               f"{result.seconds:.2f}s ({result.throughput / 2**20:.0f} MiB/s); "
               f"{len(result.events)} security event(s)", err=True)


@click.command()
@_MANIFEST
@click.option("--store", "store_path", default=None, envvar="MLWARDEN_STORE",
              type=click.Path(file_okay=False),
              help="Model store directory (env MLWARDEN_STORE); required unless --sbom "
                   "checks a directory or an image.")
@_DB
@click.option("--upstream", is_flag=True,
              help="Also ask upstream whether pinned refs moved or pinned files changed.")
@_ENDPOINT
@click.option("--token", default=None, envvar="MLWARDEN_UPSTREAM_TOKEN", help="Upstream token.")
@click.option("--workers", default=0, type=click.IntRange(0, 256),
              help="Hashing threads (default: CPU count).")
@click.option("--sbom", "sbom_path", default=None, type=click.Path(dir_okay=False),
              help="Check TARGET against this signed ML-BOM instead of the manifest.")
@click.option("--signature", "sbom_signature", default=None, type=click.Path(dir_okay=False),
              help="Signature of --sbom (default: BOM.sig).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted EC public key of the BOM signer (repeatable).")
@click.option("--cert-chain", multiple=True, type=click.Path(dir_okay=False),
              help="CA certificates the BOM signer's certificate must chain to.")
@click.option("--identity", help="BOM signer identity (certificate SAN or Sigstore).")
@click.option("--issuer", help="OIDC issuer of --identity.")
@click.option("--trust-root", type=click.Path(dir_okay=False),
              help="Pinned Sigstore trusted_root.json for --identity (offline).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]),
              default="table", show_default=True)
@click.argument("target", required=False)
def verify(manifest_path: str, store_path: str | None, db_url: str | None, upstream: bool,
           endpoint: str | None, token: str | None, workers: int, sbom_path: str | None,
           sbom_signature: str | None, public_keys: tuple[str, ...],
           cert_chain: tuple[str, ...], identity: str | None, issuer: str | None,
           trust_root: str | None, fmt: str, target: str | None) -> None:
    """Re-hash the store against the manifest; with --upstream, detect moved refs and
    changed files upstream. Any mismatch is a security event (exit 1).

    With --sbom BOM --signature SIG TARGET: check TARGET (a deployment directory, a store
    commit ORG/NAME@REV with --store, or an image path such as oci:DIR!/models/x) against
    the signed BOM: every file's sha256 matches, nothing extra, nothing missing.
    """
    from mlwarden.airlock.verify import verify as do_verify
    from mlwarden.manifest import load
    from mlwarden.report.render import render

    if sbom_path is not None or target is not None:
        from mlwarden.cli.sbom import verify_sbom

        if sbom_path is None or target is None:
            raise CliError("verify TARGET needs --sbom BOM (and the BOM's --signature)")
        verify_sbom(sbom_path, sbom_signature, target, store_path, db_url, public_keys,
                    cert_chain, identity, issuer, trust_root, fmt)
        return
    if store_path is None:
        raise CliError("Missing option '--store' (or env MLWARDEN_STORE).")
    with _clean_errors():
        manifest = load(manifest_path, missing_ok=False)
        with _store(store_path, db_url, create=False) as store:
            result = do_verify(manifest, store, workers=workers, upstream=upstream,
                               endpoint=endpoint, token=token)
    if fmt == "table":
        _print_verify(result)
    else:
        render(result.report, fmt, sys.stdout)
    if result.events:
        sys.exit(EXIT_BLOCKED)


@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@_MANIFEST
@click.option("--store", "store_path", default=None, envvar="MLWARDEN_STORE",
              type=click.Path(file_okay=False),
              help="Store to load from offline (a pinned HF-cache view of it is built).")
@click.option("--hf-cache", default=None, type=click.Path(file_okay=False),
              help="Where to build the offline view (default ~/.cache/mlwarden/hub-view/..).")
@click.option("--endpoint", default=None,
              help="Instead of offline: load through this registry (`mlwarden serve`).")
@click.option("--strict", is_flag=True,
              help="Also refuse files transformers resolves outside the guarded trees.")
@click.option("--require-signature", is_flag=True,
              help="Every model needs a valid signature from a configured identity "
                   "([guard.signing] in the policy file, or --public-key).")
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="File whose [guard.signing] table says who may sign which models "
                   "(default: mlwarden.toml / pyproject.toml in the current directory).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trust model signatures made with this EC public key (repeatable).")
@click.option("--require-provenance", is_flag=True,
              help="Every model needs signed SLSA provenance from an accepted builder and "
                   "source ([guard.provenance] in the policy file).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(manifest_path: str, store_path: str | None, hf_cache: str | None,
        endpoint: str | None, strict: bool, require_signature: bool, policy_path: str | None,
        public_keys: tuple[str, ...], require_provenance: bool,
        command: tuple[str, ...]) -> None:
    """Run COMMAND with the load guard: mlwarden run [OPTIONS] -- python train.py

    Python processes started under it verify every model file against the manifest before
    it is opened, load torch weights-only and transformers models from safetensors, refuse
    unreviewed trust_remote_code, and run offline against the store (or at --endpoint).
    """
    import os

    from mlwarden.guard import run_environment
    from mlwarden.guard.view import default_view_dir, materialize
    from mlwarden.manifest import load

    with _clean_errors():
        manifest = load(manifest_path, missing_ok=False)
        store = Path(store_path).resolve() if store_path else None
        cache = Path(hf_cache).resolve() if hf_cache else None
        if store is not None and endpoint is None:
            from mlwarden.store.store import is_store

            if not is_store(store):
                raise CliError(f"{store}: not an mlwarden store")
            cache = cache or default_view_dir(store)
            materialize(manifest, store, cache)
        from mlwarden.guard.signatures import load_guard_signing, signing_env

        signing, found = load_guard_signing(policy_path, require=require_signature or None,
                                            public_keys=public_keys)
        from mlwarden.guard.provenance import load_guard_provenance, provenance_env

        prov, prov_found = load_guard_provenance(policy_path,
                                                 require=require_provenance or None)
        env = run_environment(os.environ, Path(manifest_path), store, cache, endpoint, strict,
                              signing_env(found, require_signature, public_keys)
                              if signing is not None else None,
                              provenance_env(prov_found, require_provenance)
                              if prov is not None and prov_found is not None else None)
        try:
            os.execvpe(command[0], list(command), env)
        except FileNotFoundError:
            raise CliError(f"{command[0]}: command not found") from None


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out", default=None, type=click.Path(),
              help="Output file (one source file) or directory (default: beside the source).")
@click.option("--manifest", "manifest_path", default=None, type=click.Path(dir_okay=False),
              envvar="MLWARDEN_MANIFEST", help="Record provenance in this manifest.")
@click.option("--model", "model_id", default=None,
              help="Model id in the manifest the conversion belongs to (with --manifest).")
@click.option("--timeout", default=900.0, show_default=True, type=float)
def convert(source: str, out: str | None, manifest_path: str | None, model_id: str | None,
            timeout: float) -> None:
    """Convert pickle weights (SOURCE file, or every .bin/.pt/.pth/.ckpt in a directory) to
    safetensors in an isolated subprocess: weights-only, no network, no credentials."""
    from mlwarden.convert import ConvertError, convert_file, find_pickle_weights
    from mlwarden.manifest import update

    src = Path(source)
    sources = find_pickle_weights(src) if src.is_dir() else [src]
    if not sources:
        raise CliError(f"{src}: no pickle weights (.bin, .pt, .pth, .ckpt) to convert")
    if manifest_path and not model_id:
        raise CliError("--manifest needs --model ORG/NAME to know where to record provenance")
    done = []
    with _clean_errors():
        if manifest_path and model_id:
            from mlwarden.manifest import load

            if load(manifest_path, missing_ok=False).get(model_id) is None:
                raise CliError(f"{model_id} is not in {manifest_path}")
        for s in sources:
            dst = None
            if out:
                o = Path(out)
                from mlwarden.convert import output_name

                dst = o / output_name(s) if (src.is_dir() or o.is_dir()) else o
            try:
                c = convert_file(s, dst, timeout)
            except ConvertError as exc:
                raise CliError(str(exc)) from None
            done.append(c)
            click.echo(f"converted {c.source} ({c.source_sha256[:12]}) -> {c.output} "
                       f"({c.output_sha256[:12]}, {c.tensors} tensors, scan {c.verdict})")
        if manifest_path and model_id:
            from dataclasses import replace

            def change(m: Any) -> Any:
                e = m.get(model_id)
                if e is None:
                    raise CliError(f"{model_id} is not in {manifest_path}")
                return m.with_model(model_id, replace(
                    e, conversions=(*e.conversions, *(c.provenance() for c in done))))

            update(manifest_path, change)
            click.echo(f"provenance recorded in {manifest_path} under {model_id}", err=True)
