"""``mlwarden deploy`` and ``mlwarden monitor``.

deploy: 0 deployed, 4 bad input (unapproved commit, unusable key, unwritable destination).
monitor: runs until stopped (0); with --exit-on-alert or --once, 1 when a change is not
covered by the approved deployment; 4 bad input.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mlwarden.cli.errors import CliError


@click.command()
@click.argument("ref", metavar="ORG/NAME@REVISION")
@click.option("--store", "store_path", required=True, envvar="MLWARDEN_STORE",
              type=click.Path(file_okay=False), help="Model store (env MLWARDEN_STORE).")
@click.option("--db", "db_url", envvar="MLWARDEN_DB", default=None, help="Store database URL.")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False),
              help="Deployment directory (the service loads DEST/model).")
@click.option("--name", help="Deployment name (default: the directory's name).")
@click.option("--key", type=click.Path(dir_okay=False), help="EC key that signs the ML-BOM.")
@click.option("--password-env", metavar="VAR", help="Environment variable with the key password.")
@click.option("--cert", type=click.Path(dir_okay=False), help="Signing certificate for --key.")
@click.option("--cert-chain", "chain", multiple=True, type=click.Path(dir_okay=False))
@click.option("--sigstore", is_flag=True, help="Sign the BOM keyless with Sigstore (online).")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN", help="OIDC token for --sigstore.")
@click.option("--environment", is_flag=True,
              help="List the serving Python environment in the BOM (the monitor then "
                   "watches site-packages against it).")
@click.option("--python", "python_exe", default=None,
              help="With --environment: the serving interpreter (default: this one).")
@click.option("--policy", "policy_path", default=None, type=click.Path(dir_okay=False),
              help="Refuse a commit whose provenance fails [policy.provenance] of this file.")
@click.option("--keep", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Releases kept for rollback.")
@click.option("--by", "actor", default=None, help="Who deploys (default: login name).")
@click.option("--note", default="", help="Why: recorded in the approval log.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def deploy(ref: str, store_path: str, db_url: str | None, dest: str, name: str | None,
           key: str | None, password_env: str | None, cert: str | None,
           chain: tuple[str, ...], sigstore: bool, identity_token: str | None,
           environment: bool, python_exe: str | None, policy_path: str | None, keep: int,
           actor: str | None, note: str, fmt: str) -> None:
    """Deploy an approved store commit to DEST with its signed ML-BOM (atomically: the
    service's DEST/model symlink moves only once everything is in place). Recorded in the
    store and the approval log; `mlwarden monitor --deployment DEST` enforces it."""
    from mlwarden.deploy import BomSigner, DeployError
    from mlwarden.deploy import deploy as do_deploy
    from mlwarden.store import Store, StoreError

    repo, _, rev = ref.partition("@")
    if bool(key) == sigstore:
        raise CliError("the BOM must be signed: give --key KEY.pem or --sigstore")
    password = os.environ.get(password_env) if password_env else None
    if password_env and password is None:
        raise CliError(f"environment variable {password_env} is not set")
    if python_exe and not environment:
        raise CliError("--python describes the environment: use it with --environment")
    signer = BomSigner(key, password, cert, chain, sigstore, identity_token)
    try:
        store = Store.open(store_path, db_url, create=False)
    except StoreError as exc:
        raise CliError(str(exc)) from exc
    try:
        if policy_path is not None:
            _check_policy(store, repo, rev or "main", policy_path)
        py_path = None
        if environment and python_exe:
            from mlwarden.monitor.baseline import python_path as interp_path

            py_path = interp_path(python_exe)
        rec = do_deploy(store, repo, rev or "main", dest, name=name, signer=signer,
                        actor=actor, environment=environment, python_path=py_path,
                        keep=keep, note=note)
    except (DeployError, StoreError) as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        from mlwarden.sbom import SbomError

        if isinstance(exc, SbomError):
            raise CliError(str(exc)) from exc
        raise
    finally:
        store.close()
    if fmt == "json":
        sys.stdout.write(json.dumps(rec.to_dict(), indent=2) + "\n")
    else:
        click.echo(f"deployed {rec.repo}@{rec.commit} to {rec.root}/model as "
                   f"{rec.name!r} (release {rec.release}; BOM {rec.sbom})")


def _check_policy(store: object, repo: str, rev: str, policy_path: str) -> None:
    from mlwarden.deploy.checks import commit_provenance
    from mlwarden.policy import PolicyError, load_policy

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise CliError(str(exc)) from exc
    if policy.provenance is None:
        raise CliError(f"{policy_path} has no [policy.provenance] table")
    commit = store.resolve(repo, rev).id  # type: ignore[attr-defined]
    ok, why = commit_provenance(store, repo, commit, policy.provenance.for_model(repo))
    if not ok:
        raise CliError(f"{repo}@{commit[:12]}: provenance does not verify: {why}")


@click.command()
@click.option("--deployment", "deployments", multiple=True, type=click.Path(file_okay=False),
              help="A deployment directory of `mlwarden deploy` (repeatable); its approval "
                   "is re-read whenever it changes.")
@click.option("--sbom", "boms", multiple=True, type=(click.Path(dir_okay=False),
                                                     click.Path(dir_okay=False),
                                                     click.Path(file_okay=False)),
              metavar="BOM SIG DIR", help="A signed BOM, its signature, and the directory it "
              "describes (repeatable).")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="model-manifest.yaml whose pins --model directories must match.")
@click.option("--model", "models", multiple=True, metavar="ORG/NAME=DIR",
              help="With --manifest: a directory holding that model (repeatable).")
@click.option("--python-env", is_flag=True,
              help="Also watch the Python environment (site-packages, .pth files).")
@click.option("--python", "python_exe", default=None,
              help="Interpreter whose site-packages to watch (default: this one).")
@click.option("--site-packages", "sites", multiple=True, type=click.Path(file_okay=False),
              help="A site-packages directory to watch (repeatable; e.g. a shared volume).")
@click.option("--env-sbom", "env_boms", multiple=True,
              type=(click.Path(dir_okay=False), click.Path(dir_okay=False)),
              metavar="BOM SIG", help="A signed BOM whose libraries are the approved "
              "environment (when the deployment's BOM does not list it).")
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted EC public key of the BOM signer (repeatable).")
@click.option("--cert-chain", multiple=True, type=click.Path(dir_okay=False))
@click.option("--identity", help="BOM signer identity (certificate SAN or Sigstore).")
@click.option("--issuer", help="OIDC issuer of --identity.")
@click.option("--trust-root", type=click.Path(dir_okay=False),
              help="Pinned Sigstore trusted_root.json.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Where alerts already sent and verified stats are kept "
                   "(default ~/.local/state/mlwarden/monitor). Never watched.")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between stat sweeps (catches what events miss).")
@click.option("--rehash-interval", default=3600.0, show_default=True,
              type=click.FloatRange(1.0), help="Seconds between full re-hashes.")
@click.option("--startup", type=click.Choice(["auto", "full", "quick"]), default="auto",
              show_default=True, help="Re-hash everything at start (full), or trust files "
              "whose stat is unchanged since the last run (quick; auto: when the approval is "
              "the same).")
@click.option("--bytecode", type=click.Choice(["verify", "header"]), default="verify",
              show_default=True, help="Compare __pycache__ bytecode with its source's "
              "compilation (verify) or only its header.")
@click.option("--no-events", is_flag=True, help="No inotify: sweeps only.")
@click.option("--webhook", help="POST each alert as JSON to this URL.")
@click.option("--webhook-secret-env", metavar="VAR",
              help="HMAC-SHA256 the webhook body with this variable's value "
                   "(X-Mlwarden-Signature).")
@click.option("--syslog", "syslog", is_flag=False, flag_value="/dev/log", default=None,
              help="Log alerts to syslog (default /dev/log; or HOST:PORT for UDP).")
@click.option("--journald", "journald", is_flag=False, flag_value="/run/systemd/journal/socket",
              default=None, help="Log alerts to journald's native socket (structured fields).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus /metrics and /healthz on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--exit-on-alert", is_flag=True,
              help="Exit 1 after the first new alert (sidecars: the pod notices).")
@click.option("--once", is_flag=True, help="Check once and exit (1 if anything is off).")
def monitor(deployments: tuple[str, ...], boms: tuple[tuple[str, str, str], ...],
            manifest_path: str | None, models: tuple[str, ...], python_env: bool,
            python_exe: str | None, sites: tuple[str, ...],
            env_boms: tuple[tuple[str, str], ...], public_keys: tuple[str, ...],
            cert_chain: tuple[str, ...], identity: str | None, issuer: str | None,
            trust_root: str | None, state_dir: str | None, interval: float,
            rehash_interval: float, startup: str, bytecode: str, no_events: bool,
            webhook: str | None, webhook_secret_env: str | None, syslog: str | None,
            journald: str | None, metrics_port: int | None, metrics_host: str,
            exit_on_alert: bool, once: bool) -> None:
    """Watch deployed models and the Python environment; alert on any change not covered
    by the approved deployment's signed ML-BOM (or the manifest): JSON webhook, syslog or
    journald, Prometheus metrics, and a non-zero exit for sidecars."""
    from mlwarden.monitor import Monitor, MonitorError, MonitorOptions, Sources
    from mlwarden.monitor.baseline import check_sites, python_site_dirs
    from mlwarden.monitor.sinks import (
        JournaldSink,
        Sink,
        StderrSink,
        SyslogSink,
        WebhookSink,
    )
    from mlwarden.monitor.state import default_state_dir
    from mlwarden.sbom import SbomError
    from mlwarden.signing.statement import Trust

    if not (deployments or boms or manifest_path or python_env or sites):
        raise CliError("nothing to watch: give --deployment, --sbom, --manifest/--model, "
                       "or --python-env / --site-packages")
    if models and not manifest_path:
        raise CliError("--model needs --manifest")
    if (boms or deployments or env_boms) and not (public_keys or cert_chain or identity):
        raise CliError("give the BOM signer's trust anchor: --public-key, --cert-chain, or "
                       "--identity with --issuer")
    for p in (*public_keys, *cert_chain, *([trust_root] if trust_root else [])):
        if not Path(p).is_file():
            raise CliError(f"{p}: no such file")
    parsed_models = []
    for m in models:
        repo, eq, d = m.partition("=")
        if not eq or "/" not in repo or not d:
            raise CliError(f"--model {m!r}: expected ORG/NAME=DIR")
        parsed_models.append((repo, Path(d).resolve()))
    trust = Trust(tuple(Path(p) for p in public_keys), tuple(Path(p) for p in cert_chain),
                  ((identity, issuer),) if identity else (),
                  Path(trust_root) if trust_root else None)
    try:
        site_dirs = check_sites([Path(s) for s in sites])
        if python_env:
            site_dirs += [d.resolve() for d in python_site_dirs(python_exe or sys.executable)]
    except SbomError as exc:
        raise CliError(str(exc)) from exc
    sources = Sources(trust, [Path(d).resolve() for d in deployments],
                      [(Path(b), Path(s), Path(d).resolve()) for b, s, d in boms],
                      Path(manifest_path).resolve() if manifest_path else None,
                      parsed_models, [(Path(b), Path(s)) for b, s in env_boms])
    sinks: list[Sink] = [StderrSink()]
    try:
        if syslog:
            sinks.append(SyslogSink(syslog))
        if journald:
            sinks.append(JournaldSink(journald))
    except OSError as exc:
        raise CliError(f"cannot open the log sink: {exc}") from exc
    hook = None
    if webhook:
        secret = None
        if webhook_secret_env:
            value = os.environ.get(webhook_secret_env)
            if value is None:
                raise CliError(f"environment variable {webhook_secret_env} is not set")
            secret = value.encode()
        hook = WebhookSink(webhook, secret)
        sinks.append(hook)
    metrics = None
    if metrics_port is not None:
        from mlwarden.monitor.metrics import Metrics, serve

        try:
            metrics = Metrics()
        except ImportError:
            raise CliError("--metrics-port needs prometheus-client: pip install "
                           "'mlwarden[monitor]'") from None
    opts = MonitorOptions(sources, site_dirs, Path(state_dir) if state_dir else
                          default_state_dir(), interval, rehash_interval, 0.2,
                          exit_on_alert, once, bytecode, startup, not no_events)
    mon = Monitor(opts, sinks, hook, metrics)
    if metrics is not None and metrics_port is not None:
        try:
            server = serve(metrics, lambda: (not mon.outstanding(), mon.outstanding()),
                           metrics_host, metrics_port)
        except OSError as exc:
            raise CliError(f"cannot listen on {metrics_host}:{metrics_port}: "
                           f"{exc.strerror}") from exc
        click.echo(json.dumps({"event": "metrics", "port": server.server_address[1]}),
                   err=True)
    try:
        code = mon.run()
    except MonitorError as exc:
        raise CliError(str(exc)) from exc
    finally:
        for s in sinks:
            s.close()
    sys.exit(code)
