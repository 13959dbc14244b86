"""``mlwarden attest`` and ``mlwarden verify-provenance``.

attest exits with the command's own status (no record for a failed run), 4 for bad input
or a signing failure. verify-provenance: 0 verified, 1 not verified, 4 bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlwarden.cli.errors import CliError

EXIT_NOT_VERIFIED = 1


def _password(env_var: str | None) -> str | None:
    import os

    if not env_var:
        return None
    value = os.environ.get(env_var)
    if value is None:
        raise CliError(f"environment variable {env_var} is not set")
    return value


@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False),
              help="Where to write the provenance (a Sigstore bundle with a DSSE envelope).")
@click.option("--key", type=click.Path(dir_okay=False), help="EC private key (PEM) to sign with.")
@click.option("--password-env", metavar="VAR", help="Environment variable with the key password.")
@click.option("--cert", type=click.Path(dir_okay=False),
              help="Signing certificate for --key (certificate mode).")
@click.option("--cert-chain", "chain", multiple=True, type=click.Path(dir_okay=False),
              help="Intermediate/CA certificates to embed (repeatable).")
@click.option("--sigstore", is_flag=True, help="Keyless signing through Sigstore (online).")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN",
              help="OIDC token for --sigstore (env SIGSTORE_ID_TOKEN; CI ambient credentials "
                   "are detected).")
@click.option("--staging", is_flag=True, help="Sigstore's staging instance.")
@click.option("--trust-config", type=click.Path(dir_okay=False),
              help="Sigstore client trust configuration for --sigstore.")
@click.option("--unsigned", is_flag=True, help="Write the bare statement, unsigned (SLSA L1 "
              "at most; verification requires a signature).")
@click.option("--outputs", "outputs", multiple=True, type=click.Path(),
              help="Directory whose new or changed files are the outputs (repeatable; "
                   "default: the working directory).")
@click.option("--dataset", "datasets", multiple=True, type=click.Path(exists=True),
              help="Declare a dataset file or directory (recorded even if opened natively).")
@click.option("--config", "configs", multiple=True, type=click.Path(exists=True),
              help="Declare a configuration file.")
@click.option("--input", "inputs", multiple=True, type=click.Path(exists=True),
              help="Declare any other input.")
@click.option("--ignore", "ignores", multiple=True, type=click.Path(),
              help="Never record reads under this path (repeatable).")
@click.option("--image-digest", help="Container image the run used: IMAGE@sha256:<hex> "
              "(env MLWARDEN_IMAGE_DIGEST).", envvar="MLWARDEN_IMAGE_DIGEST")
@click.option("--builder-id", help="Builder identity (default: from GitHub Actions / GitLab CI, "
              "else local://USER@HOST).")
@click.option("--source-uri", help="Override the source (git+https://HOST/ORG/REPO@REF).")
@click.option("--no-environment", is_flag=True,
              help="Do not list the installed distributions.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Summary on stderr (text) or stdout (json).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def attest(output: str, key: str | None, password_env: str | None, cert: str | None,
           chain: tuple[str, ...], sigstore: bool, identity_token: str | None, staging: bool,
           trust_config: str | None, unsigned: bool, outputs: tuple[str, ...],
           datasets: tuple[str, ...], configs: tuple[str, ...], inputs: tuple[str, ...],
           ignores: tuple[str, ...], image_digest: str | None, builder_id: str | None,
           source_uri: str | None, no_environment: bool, fmt: str,
           command: tuple[str, ...]) -> None:
    """Run COMMAND and write its SLSA Provenance v1: mlwarden attest -o prov.json -- python
    train.py ...

    Records what the run read (data, configuration, base models with their Hub commits,
    code outside the commit), what it wrote (the subjects, with sha256), the git commit and
    whether the tree was dirty, the installed distributions, the container image, and the
    builder from GitHub Actions / GitLab CI. Signed as DSSE with --key or --sigstore.
    """
    from mlwarden.provenance.attest import AttestOptions, SignOptions
    from mlwarden.provenance.attest import attest as run
    from mlwarden.provenance.classify import Declared
    from mlwarden.provenance.errors import ProvenanceError

    signers = sum([bool(key), sigstore, unsigned])
    if signers != 1:
        raise CliError("choose one of --key KEY.pem, --sigstore or --unsigned")
    if cert is None and chain:
        raise CliError("--cert-chain needs --cert")
    sign = None if unsigned else SignOptions(
        key=key, password=_password(password_env), certificate=cert, chain=chain,
        sigstore=sigstore, identity_token=identity_token, use_staging=staging,
        trust_config=trust_config)
    opts = AttestOptions(
        command=command, output=Path(output), outputs=tuple(Path(o) for o in outputs),
        declared=Declared(datasets, configs, inputs, ignores), image=image_digest,
        builder_id=builder_id, source_uri=source_uri, sign=sign,
        environment=not no_environment)
    try:
        res = run(opts)
    except ProvenanceError as exc:
        raise CliError(str(exc)) from exc
    for w in res.warnings:
        click.echo(f"mlwarden attest: warning: {w}", err=True)
    if res.record is None:
        sys.exit(res.exit_code)
    rec = res.record
    if fmt == "json":
        kinds: dict[str, int] = {}
        for d in rec.dependencies:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
        sys.stdout.write(json.dumps({
            "output": str(res.output), "signed": sign.method if sign else None,
            "subjects": [{"name": a.name, "sha256": a.sha256, "size": a.size}
                         for a in rec.subjects],
            "dependencies": kinds, "builder": rec.builder.id, "source": rec.source_uri,
            "slsa_level": rec.level.to_dict(), "warnings": list(res.warnings),
            "seconds": res.timings}, indent=2)
            + "\n")
        _exit_now()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(
        {d.kind: sum(1 for x in rec.dependencies if x.kind == d.kind)
         for d in rec.dependencies}.items()))
    click.echo(f"wrote {'signed (' + sign.method + ')' if sign else 'unsigned'} provenance "
               f"of {len(rec.subjects)} output(s) to {res.output}", err=True)
    click.echo(f"  builder {rec.builder.id}; source {rec.source_uri or '(none)'}", err=True)
    click.echo(f"  dependencies: {counts or 'none'}", err=True)
    click.echo(f"  supports SLSA Build L{rec.level.level}:", err=True)
    for r in rec.level.reasons:
        click.echo(f"    + {r}", err=True)
    for r in rec.level.unmet:
        click.echo(f"    - not {r}", err=True)
    _exit_now()


def _exit_now() -> None:
    """The record is written: skip the interpreter's teardown (tens of milliseconds with the
    crypto and protobuf modules loaded), which would add to every attested run."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        os._exit(141)
    os._exit(0)


@click.command("verify-provenance")
@click.argument("model", type=click.Path())
@click.option("--provenance", type=click.Path(dir_okay=False),
              help="Provenance record (default: provenance.json inside MODEL).")
@click.option("--builder", "builders", multiple=True, required=True,
              help="Accepted builder id (repeatable); without @REF any ref of it is accepted.")
@click.option("--source", help="Expected source repository (github.com/ORG/REPO).")
@click.option("--source-ref", help="Expected ref (refs/heads/main, refs/tags/v1).")
@click.option("--source-branch", help="Expected branch (refs/heads/BRANCH).")
@click.option("--source-tag", help="Expected tag (refs/tags/TAG).")
@click.option("--source-commit", help="Expected commit (full or a prefix of 7+ hex).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted EC public key (repeatable).")
@click.option("--cert-chain", multiple=True, type=click.Path(dir_okay=False),
              help="CA certificates the signing certificate must chain to.")
@click.option("--identity", help="Signer identity (certificate SAN, or Sigstore identity).")
@click.option("--issuer", help="OIDC issuer of --identity.")
@click.option("--trust-root", type=click.Path(dir_okay=False),
              help="Pinned Sigstore trusted_root.json (offline verification).")
@click.option("--staging", is_flag=True, help="Sigstore staging trust root (online).")
@click.option("--dataset-digest", "dataset_digests", multiple=True,
              help="Allowed dataset digest (sha256 hex; repeatable).")
@click.option("--allowed-datasets", type=click.Path(dir_okay=False),
              help="File of allowed dataset digests, one per line.")
@click.option("--allow-dirty", is_flag=True, help="Accept a dirty training tree.")
@click.option("--subject-prefix", help="Directory prefix of the subjects that name MODEL's "
              "files (default: inferred).")
@click.option("--ignore-path", "ignore", multiple=True,
              help="File in MODEL that need not be a subject (repeatable).")
@click.option("--print-provenance", is_flag=True, help="Print the verified statement.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "sarif"]),
              default="table", show_default=True)
def verify_provenance(model: str, provenance: str | None, builders: tuple[str, ...],
                      source: str | None, source_ref: str | None, source_branch: str | None,
                      source_tag: str | None, source_commit: str | None,
                      public_keys: tuple[str, ...], cert_chain: tuple[str, ...],
                      identity: str | None, issuer: str | None, trust_root: str | None,
                      staging: bool, dataset_digests: tuple[str, ...],
                      allowed_datasets: str | None, allow_dirty: bool,
                      subject_prefix: str | None, ignore: tuple[str, ...],
                      print_provenance: bool, fmt: str) -> None:
    """Verify MODEL against its provenance, like slsa-verifier: signature, subjects vs files,
    builder, source repository and ref, and optionally the datasets."""
    from mlwarden.provenance.errors import ProvenanceError
    from mlwarden.provenance.verify import VerifyOptions
    from mlwarden.provenance.verify import verify_provenance as verify
    from mlwarden.report.render import render
    from mlwarden.signing.errors import SigningError
    from mlwarden.signing.statement import Trust

    refs = [r for r in (source_ref, source_branch and f"refs/heads/{source_branch}",
                        source_tag and f"refs/tags/{source_tag}") if r]
    if len(refs) > 1:
        raise CliError("give one of --source-ref, --source-branch, --source-tag")
    if (source_ref or source_branch or source_tag) and not source:
        raise CliError("--source-ref/--source-branch/--source-tag need --source")
    if not (public_keys or cert_chain or identity):
        raise CliError("give a trust anchor: --public-key, --cert-chain, or --identity with "
                       "--issuer (Sigstore)")
    if identity and not cert_chain and not issuer:
        raise CliError("Sigstore verification needs --issuer with --identity")
    for p in (*public_keys, *cert_chain, *([trust_root] if trust_root else [])):
        if not Path(p).is_file():
            raise CliError(f"{p}: no such file")
    allowed: set[str] | None = None
    if dataset_digests or allowed_datasets:
        allowed = {d.lower().removeprefix("sha256:") for d in dataset_digests}
        if allowed_datasets:
            try:
                lines = Path(allowed_datasets).read_text().splitlines()
            except OSError as exc:
                raise CliError(f"{allowed_datasets}: {exc.strerror}") from None
            allowed |= {x.strip().lower().removeprefix("sha256:") for x in lines
                        if x.strip() and not x.startswith("#")}
    trust = Trust(tuple(Path(p) for p in public_keys), tuple(Path(p) for p in cert_chain),
                  ((identity, issuer),) if identity else (),
                  Path(trust_root) if trust_root else None, staging)
    opts = VerifyOptions(trust, builders, source, refs[0] if refs else None, source_commit,
                         frozenset(allowed) if allowed is not None else None, allow_dirty,
                         subject_prefix, ignore)
    try:
        res = verify(model, provenance, opts)
    except (ProvenanceError, SigningError) as exc:
        raise CliError(str(exc)) from exc
    if print_provenance and res.statement is not None and res.ok:
        sys.stdout.write(json.dumps(res.statement, indent=2) + "\n")
    elif fmt == "table":
        from mlwarden.report.render import render_table

        render_table(res.report, sys.stdout)
    else:
        render(res.report, fmt, sys.stdout)
    if res.ok:
        click.echo(f"PASSED: verified {model} (builder {res.builder}, source {res.source}, "
                   f"SLSA Build L{res.level_verified})", err=True)
    else:
        click.echo(f"FAILED: {model} does not match its provenance", err=True)
    sys.exit(0 if res.ok else EXIT_NOT_VERIFIED)
