"""``mlwarden sign`` and ``mlwarden verify-signature``: OpenSSF model-signing signatures.

Exit status of verify-signature: 0 verified, 1 not verified (tampered model or signature,
wrong key, untrusted chain, identity mismatch, malformed signature), 4 bad input or usage.
"""

from __future__ import annotations

import json
import sys

import click

from mlwarden.cli.errors import CliError

EXIT_NOT_VERIFIED = 1


@click.command()
@click.argument("model", type=click.Path())
@click.option("--key", "key", type=click.Path(dir_okay=False),
              help="EC private key (PEM) to sign with.")
@click.option("--password-env", metavar="VAR",
              help="Environment variable holding the key's password.")
@click.option("--cert", "cert", type=click.Path(dir_okay=False),
              help="Signing certificate (PEM) for --key: signs in certificate mode.")
@click.option("--cert-chain", "chain", multiple=True, type=click.Path(dir_okay=False),
              help="Intermediate/CA certificates to embed (repeatable).")
@click.option("--signature", type=click.Path(dir_okay=False),
              help="Where to write the signature (default: model.sig beside MODEL).")
@click.option("--sigstore", is_flag=True, help="Keyless signing with Sigstore (online).")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN",
              help="OIDC token for --sigstore (env SIGSTORE_ID_TOKEN).")
@click.option("--staging", is_flag=True, help="Use Sigstore's staging instance.")
@click.option("--trust-config", type=click.Path(dir_okay=False),
              help="Sigstore client trust configuration for --sigstore.")
@click.option("--hash", "hash_algorithm", type=click.Choice(["sha256", "blake2", "blake3"]),
              default="sha256", show_default=True)
@click.option("--shard-size", type=click.IntRange(min=1),
              help="Hash files in shards of this many bytes (default: whole files).")
@click.option("--ignore-path", "ignore_paths", multiple=True,
              help="Path inside MODEL to leave unsigned (repeatable).")
@click.option("--ignore-git-paths/--no-ignore-git-paths", default=True, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def sign(model: str, key: str | None, password_env: str | None, cert: str | None,
         chain: tuple[str, ...], signature: str | None, sigstore: bool,
         identity_token: str | None, staging: bool, trust_config: str | None,
         hash_algorithm: str, shard_size: int | None, ignore_paths: tuple[str, ...],
         ignore_git_paths: bool, fmt: str) -> None:
    """Sign MODEL (a directory or file) in the OpenSSF model-signing format."""
    import os

    from mlwarden.signing import SigningError, SigningInputError, sign_model

    if sigstore and key:
        raise CliError("--sigstore and --key are exclusive")
    if not sigstore and not key:
        raise CliError("give --key KEY.pem (optionally --cert) or --sigstore")
    if (cert is None) and chain:
        raise CliError("--cert-chain needs --cert")
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise CliError(f"environment variable {password_env} is not set")
    try:
        res = sign_model(model, signature, key=key, password=password, certificate=cert,
                         chain=chain, sigstore=sigstore, identity_token=identity_token,
                         use_staging=staging, trust_config=trust_config,
                         hash_algorithm=hash_algorithm, shard_size=shard_size,
                         ignore_paths=ignore_paths, ignore_git_paths=ignore_git_paths)
    except SigningInputError as exc:
        raise CliError(str(exc)) from exc
    except SigningError as exc:
        click.echo(f"mlwarden: sign: {exc}", err=True)
        sys.exit(EXIT_NOT_VERIFIED)
    if fmt == "json":
        sys.stdout.write(json.dumps({"model": str(res.model), "signature": str(res.signature),
                                     "method": res.method, "resources": res.resources,
                                     "ignored": list(res.ignored)}) + "\n")
    else:
        click.echo(f"signed {res.model} ({res.method}, {res.resources} resources) -> "
                   f"{res.signature}")


@click.command("verify-signature")
@click.argument("model", type=click.Path())
@click.option("--signature", type=click.Path(dir_okay=False),
              help="Signature file (default: model.sig beside MODEL).")
@click.option("--public-key", type=click.Path(dir_okay=False),
              help="EC public key (PEM) of a key-mode signature.")
@click.option("--cert-chain", multiple=True, type=click.Path(dir_okay=False),
              help="CA certificates the signing certificate must chain to (repeatable).")
@click.option("--identity", help="Expected signer: e-mail or URI in the certificate SAN.")
@click.option("--issuer", help="Expected OIDC issuer of the signing certificate.")
@click.option("--trust-root", type=click.Path(dir_okay=False),
              help="Pinned Sigstore trusted_root.json (or client trust config): offline.")
@click.option("--staging", is_flag=True, help="Sigstore staging instance (online).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def verify_signature(model: str, signature: str | None, public_key: str | None,
                     cert_chain: tuple[str, ...], identity: str | None, issuer: str | None,
                     trust_root: str | None, staging: bool, fmt: str) -> None:
    """Verify MODEL against an OpenSSF model-signing signature."""
    from mlwarden.signing import SigningInputError, default_signature_path
    from mlwarden.signing import verify_signature as verify

    if trust_root and (public_key or cert_chain):
        raise CliError("--trust-root applies to Sigstore signatures (--identity/--issuer)")
    sig = signature or str(default_signature_path(model))
    try:
        res = verify(model, sig, public_key=public_key, cert_chain=cert_chain,
                     identity=identity, issuer=issuer, trust_root=trust_root,
                     use_staging=staging)
    except SigningInputError as exc:
        raise CliError(str(exc)) from exc
    if fmt == "json":
        sys.stdout.write(json.dumps(res.to_dict()) + "\n")
    elif res.ok:
        who = f" by {', '.join(res.identities)}" if res.identities else ""
        iss = f" (issuer {res.issuer})" if res.issuer else ""
        click.echo(f"verified {res.model}: {res.method} signature{who}{iss}, "
                   f"{res.resources} resources ({res.serialization})")
        for p in res.unsigned:
            click.echo(f"warning: {p} is excluded from the signature by the signer", err=True)
    else:
        click.echo(f"mlwarden: NOT VERIFIED: {res.error}", err=True)
    sys.exit(0 if res.ok else EXIT_NOT_VERIFIED)
