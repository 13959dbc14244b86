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
@click.option("--sign", "sign", is_flag=True,
              help="Sign the BOM (OpenSSF model-signing format over the BOM file; needs "
                   "--output and --key or --sigstore).")
@click.option("--key", type=click.Path(dir_okay=False), help="EC private key for --sign.")
@click.option("--password-env", metavar="VAR", help="Environment variable with the key password.")
@click.option("--cert", type=click.Path(dir_okay=False), help="Signing certificate for --key.")
@click.option("--cert-chain", "chain", multiple=True, type=click.Path(dir_okay=False),
              help="Intermediate/CA certificates to embed (repeatable).")
@click.option("--sigstore", is_flag=True, help="Keyless signing with Sigstore (online).")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN", help="OIDC token for --sigstore.")
@click.option("--signature", type=click.Path(dir_okay=False),
              help="Where to write the signature (default: OUTPUT.sig).")
def sbom(model: str, fmt: str, store_path: str | None, environment: bool,
         lockfiles: tuple[str, ...], name: str | None, revision: str | None,
         output: str | None, sign: bool, key: str | None, password_env: str | None,
         cert: str | None, chain: tuple[str, ...], sigstore: bool,
         identity_token: str | None, signature: str | None) -> None:
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
    password = None
    if sign:
        if output is None:
            raise CliError("--sign needs --output: the signature covers the BOM file")
        if bool(key) == sigstore:
            raise CliError("--sign needs one of --key KEY.pem or --sigstore")
        if cert is None and chain:
            raise CliError("--cert-chain needs --cert")
        if password_env:
            import os

            password = os.environ.get(password_env)
            if password is None:
                raise CliError(f"environment variable {password_env} is not set")
    elif key or sigstore or cert or signature:
        raise CliError("--key/--sigstore/--cert/--signature are for --sign")
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
    if sign:
        from mlwarden.sbom.sign import sign_bom

        try:
            sig = sign_bom(output, signature, key=key, password=password, certificate=cert,
                           chain=chain, sigstore=sigstore, identity_token=identity_token)
        except SbomError as exc:
            raise CliError(str(exc)) from exc
        click.echo(f"signed {output} -> {sig}", err=True)


def verify_sbom(bom: str, signature: str | None, target: str, store: str | None,
                db_url: str | None, public_keys: tuple[str, ...], cert_chain: tuple[str, ...],
                identity: str | None, issuer: str | None, trust_root: str | None,
                fmt: str) -> None:
    """``mlwarden verify --sbom``: exit 0 verified, 1 not, 4 bad input."""
    from pathlib import Path

    from mlwarden.report.render import render, render_table
    from mlwarden.sbom import SbomError
    from mlwarden.sbom.sign import default_bom_signature
    from mlwarden.sbom.verify import verify_against_bom
    from mlwarden.signing.statement import Trust

    if not (public_keys or cert_chain or identity):
        raise CliError("give the BOM signer's trust anchor: --public-key, --cert-chain, or "
                       "--identity with --issuer")
    if identity and not cert_chain and not issuer:
        raise CliError("Sigstore verification needs --issuer with --identity")
    for p in (*public_keys, *cert_chain, *([trust_root] if trust_root else [])):
        if not Path(p).is_file():
            raise CliError(f"{p}: no such file")
    is_ref = "@" in target and not Path(target).exists() and ":" not in target.split("@")[0]
    if is_ref and store is None:
        raise CliError(f"{target} names a store commit: give --store")
    trust = Trust(tuple(Path(p) for p in public_keys), tuple(Path(p) for p in cert_chain),
                  ((identity, issuer),) if identity else (),
                  Path(trust_root) if trust_root else None)
    try:
        res = verify_against_bom(bom, signature or default_bom_signature(bom), target, trust,
                                 store=store if is_ref else None, db_url=db_url)
    except SbomError as exc:
        raise CliError(str(exc)) from exc
    if fmt == "table":
        render_table(res.report, sys.stdout)
    else:
        render(res.report, fmt, sys.stdout)
    if res.ok:
        click.echo(f"verified {target} against {bom} (signed by {res.signer})", err=True)
    else:
        click.echo(f"mlwarden: NOT VERIFIED: {target} does not match {bom}", err=True)
    sys.exit(0 if res.ok else 1)
