"""``mlwarden trace`` and ``mlwarden restore``.

trace: 0 nothing affected, 1 something is, 4 bad input. restore: 0 restored (or, with
--dry-run, a good commit exists), 1 no commit qualifies, 4 bad input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mlwarden.cli.errors import CliError, write_output


@click.command()
@click.argument("query")
@click.option("--store", "store_path", default=None, envvar="MLWARDEN_STORE",
              type=click.Path(file_okay=False), help="Model store (env MLWARDEN_STORE).")
@click.option("--db", "db_url", envvar="MLWARDEN_DB", default=None, help="Store database URL.")
@click.option("--provenance", "provenance", multiple=True, type=click.Path(),
              help="More provenance records: a file or a directory of them (repeatable).")
@click.option("--sbom", "sboms", multiple=True, type=click.Path(dir_okay=False),
              help="More ML-BOM files (repeatable).")
@click.option("--fleet", "fleet", multiple=True,
              help="Fleet-scan results: a Parquet file or directory, or "
                   "postgresql://...#TABLE (repeatable).")
@click.option("--advisories", type=click.Path(dir_okay=False),
              help="Advisory database (default: the bundled one).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]),
              default="table", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here instead.")
def trace(query: str, store_path: str | None, db_url: str | None,
          provenance: tuple[str, ...], sboms: tuple[str, ...], fleet: tuple[str, ...],
          advisories: str | None, fmt: str, output: str | None) -> None:
    """Which models, commits, tags, deployments and training runs are affected by QUERY:
    a sha256 (blob or dataset digest), a package (name==version or a specifier), or an
    advisory id (CVE-, GHSA-, PYSEC-)."""
    from mlwarden.incident import IncidentError, TraceSources
    from mlwarden.incident import trace as do_trace
    from mlwarden.report.render import render, render_table
    from mlwarden.store import Store, StoreError

    if store_path is None and not (provenance or sboms or fleet):
        raise CliError("nothing to search: give --store, --provenance, --sbom or --fleet")
    store = None
    try:
        if store_path is not None:
            store = Store.open(store_path, db_url, create=False)
        res = do_trace(query, store, TraceSources(provenance, sboms, fleet, advisories))
    except (IncidentError, StoreError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        if store is not None:
            store.close()
    report = res.report()
    if output is not None:
        import io

        buf = io.StringIO()
        render(report, "json" if fmt == "table" else fmt, buf)
        write_output(output, buf.getvalue())
    elif fmt == "table":
        render_table(report, sys.stdout)
    else:
        render(report, fmt, sys.stdout)
    click.echo(f"trace {query}: {len(res.models)} model(s), {len(res.commits)} commit(s), "
               f"{len(res.tags)} ref(s), {len(res.deployments)} deployment(s), "
               f"{len(res.runs)} training run(s) affected", err=True)
    sys.exit(1 if res.hits else 0)


@click.command()
@click.option("--store", "store_path", required=True, envvar="MLWARDEN_STORE",
              type=click.Path(file_okay=False), help="Model store (env MLWARDEN_STORE).")
@click.option("--db", "db_url", envvar="MLWARDEN_DB", default=None, help="Store database URL.")
@click.option("--deployment", type=click.Path(file_okay=False),
              help="Restore this deployment directory.")
@click.option("--tag", "tag_ref", metavar="ORG/NAME:TAG", help="Restore this registry tag.")
@click.option("--policy", "policy_path", required=True, type=click.Path(dir_okay=False),
              help="File whose [policy.provenance] says which provenance is good.")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted EC public key of the ML-BOM signer (repeatable).")
@click.option("--cert-chain", multiple=True, type=click.Path(dir_okay=False))
@click.option("--identity", help="BOM signer identity (certificate SAN or Sigstore).")
@click.option("--issuer", help="OIDC issuer of --identity.")
@click.option("--trust-root", type=click.Path(dir_okay=False))
@click.option("--key", type=click.Path(dir_okay=False),
              help="EC key to sign the restored deployment's ML-BOM.")
@click.option("--password-env", metavar="VAR")
@click.option("--sigstore", is_flag=True, help="Sign the restored BOM keyless (online).")
@click.option("--dry-run", is_flag=True, help="Only say which commit would be restored.")
@click.option("--by", "actor", default=None, help="Who restores (default: login name).")
@click.option("--note", default="", help="Why: recorded in the approval log.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def restore(store_path: str, db_url: str | None, deployment: str | None,
            tag_ref: str | None, policy_path: str, public_keys: tuple[str, ...],
            cert_chain: tuple[str, ...], identity: str | None, issuer: str | None,
            trust_root: str | None, key: str | None, password_env: str | None,
            sigstore: bool, dry_run: bool, actor: str | None, note: str, fmt: str) -> None:
    """Point a deployment (--deployment DEST) or a registry tag (--tag ORG/NAME:TAG) back to
    the last commit whose signed ML-BOM and provenance verify; logged as an approval."""
    from mlwarden.deploy import BomSigner, DeployError
    from mlwarden.incident import IncidentError, restore_deployment, restore_tag
    from mlwarden.policy import PolicyError, load_policy
    from mlwarden.signing.statement import Trust
    from mlwarden.store import Store, StoreError

    if bool(deployment) == bool(tag_ref):
        raise CliError("give one of --deployment DEST or --tag ORG/NAME:TAG")
    if not (public_keys or cert_chain or identity):
        raise CliError("give the ML-BOM signer's trust anchor: --public-key, --cert-chain, "
                       "or --identity with --issuer")
    if deployment and not dry_run and bool(key) == sigstore:
        raise CliError("restoring a deployment signs its new ML-BOM: give --key or --sigstore")
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    if policy.provenance is None:
        raise CliError(f"{policy_path} has no [policy.provenance] table: restore needs to "
                       "know which provenance is good")
    trust = Trust(tuple(Path(p) for p in public_keys), tuple(Path(p) for p in cert_chain),
                  ((identity, issuer),) if identity else (),
                  Path(trust_root) if trust_root else None)
    password = os.environ.get(password_env) if password_env else None
    try:
        store = Store.open(store_path, db_url, create=False)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    try:
        if tag_ref is not None:
            repo, sep, tag = tag_ref.rpartition(":")
            if not sep or "/" not in repo or not tag:
                raise CliError(f"--tag {tag_ref!r}: expected ORG/NAME:TAG")
            res = restore_tag(store, repo, tag, trust, policy.provenance.for_model(repo),
                              actor=actor, note=note, dry_run=dry_run)
        else:
            assert deployment is not None
            from mlwarden.deploy import read_record

            rec = read_record(deployment)
            res = restore_deployment(store, deployment, trust,
                                     policy.provenance.for_model(rec.repo),
                                     BomSigner(key, password, sigstore=sigstore), actor=actor,
                                     note=note, dry_run=dry_run)
    except (IncidentError, DeployError, StoreError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()
    if fmt == "json":
        sys.stdout.write(json.dumps(res.to_dict(), indent=2) + "\n")
    else:
        for c in res.candidates:
            mark = "OK  " if c.ok else "skip"
            click.echo(f"  {mark} {c.commit[:12]}: {'; '.join(c.reasons)}", err=True)
        if res.restored is None:
            click.echo(f"mlwarden: no earlier commit of {res.repo} has a signed ML-BOM and "
                       f"provenance that verify: {res.target} left at "
                       f"{(res.previous or '?')[:12]}", err=True)
        elif dry_run:
            click.echo(f"would restore {res.target} from {(res.previous or '?')[:12]} to "
                       f"{res.restored}")
        else:
            click.echo(f"restored {res.target} from {(res.previous or '?')[:12]} to "
                       f"{res.restored} (logged as an approval)")
    sys.exit(0 if res.restored else 1)
