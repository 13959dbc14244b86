"""``mlwarden memory``: integrity of the files agents load as instructions.

discover/check list and content-check them; seal/verify/exec/watch sign and enforce their
state; encrypt/decrypt/edit keep them under authenticated encryption.
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from mlwarden.cli.errors import CliError, write_output
from mlwarden.report.model import FileResult, Report, Verdict, exit_code
from mlwarden.report.render import FORMATS, render, render_table

F = TypeVar("F", bound=Callable[..., Any])
FAIL_ON = {"malicious": Verdict.MALICIOUS, "unscannable": Verdict.UNSCANNABLE,
           "suspicious": Verdict.SUSPICIOUS, "never": None}


# ----------------------------------------------------------------------------- shared options

def _key_options(public: bool = False) -> Callable[[F], F]:
    def deco(f: F) -> F:
        if public:
            f = click.option("--public-key", "public_key", type=click.Path(dir_okay=False),
                             help="Verify with this public key only (PEM); the agent's "
                                  "environment then never holds the private key.")(f)
        f = click.option("--keyring", "keyring_service", metavar="SERVICE",
                         help="Keep the key in the OS keyring under SERVICE (needs the "
                              "'keyring' package).")(f)
        f = click.option("--key", "key_path", type=click.Path(dir_okay=False),
                         help="Private key file (PEM, created if missing by seal/encrypt). "
                              "Must live outside the project tree.")(f)
        return f
    return deco


def _discovery_options(f: F) -> F:
    f = click.option("--no-default-excludes", is_flag=True,
                     help="Also walk .git, node_modules, virtualenvs and caches.")(f)
    f = click.option("--exclude", "excludes", multiple=True, metavar="GLOB",
                     help="Skip paths matching GLOB (repeatable).")(f)
    f = click.option("--glob", "globs", multiple=True, metavar="PATTERN",
                     help="Also treat files matching PATTERN as instructions (relative to "
                          "ROOT, or ~/...; repeatable).")(f)
    f = click.option("--home/--no-home", default=True, show_default=True,
                     help="Include the user's agent files (~/.claude/CLAUDE.md, ...).")(f)
    return f


def _output_options(default_fail: str) -> Callable[[F], F]:
    def deco(f: F) -> F:
        f = click.option("--verbose", "-v", is_flag=True,
                         help="Show informational findings too.")(f)
        f = click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default=default_fail,
                         show_default=True,
                         help="Least severe content-check verdict that fails the run.")(f)
        f = click.option("--output", "-o", type=click.Path(dir_okay=False),
                         help="Write the report here.")(f)
        f = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                         show_default=True)(f)
        return f
    return deco


def _root(root: str) -> Path:
    p = Path(root)
    if not p.is_dir():
        raise CliError(f"{root}: not a directory")
    return p


def _settings(root: Path, globs: tuple[str, ...], excludes: tuple[str, ...], home: bool,
              no_default_excludes: bool) -> Any:
    from mlwarden.memory.discover import DiscoverySettings, load_config_globs

    try:
        cfg_globs, cfg_excludes = load_config_globs(root)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    return DiscoverySettings(tuple(dict.fromkeys(cfg_globs + globs)),
                             tuple(dict.fromkeys(cfg_excludes + excludes)), home,
                             not no_default_excludes)


def _guard_trees(root: Path | None, home: bool) -> list[Path]:
    from mlwarden.memory.discover import HOME_AGENT_DIRS

    trees = [root] if root is not None else []
    if home:
        trees += [Path.home() / d for d in HOME_AGENT_DIRS]
    return trees


def _warn(msg: str) -> None:
    click.echo(f"mlwarden: warning: {msg}", err=True)


def _private_key(key_path: str | None, keyring_service: str | None, trees: list[Path],
                 create: bool) -> Any:
    from mlwarden.memory.errors import MemoryGuardError
    from mlwarden.memory.keys import KeySource, load_private, refuse_key_inside

    if (key_path is None) == (keyring_service is None):
        raise CliError("give exactly one of --key FILE or --keyring SERVICE")
    warnings: list[str] = []
    try:
        if key_path is not None:
            refuse_key_inside(Path(key_path), trees)
            key = load_private(KeySource(path=Path(key_path)), create, warnings)
        else:
            key = load_private(KeySource(keyring_service=keyring_service), create, warnings)
    except MemoryGuardError as exc:
        raise CliError(str(exc)) from exc
    for w in warnings:
        _warn(w)
    return key


def _public_key(key_path: str | None, keyring_service: str | None, public_key: str | None,
                trees: list[Path]) -> Any:
    from mlwarden.memory.errors import MemoryGuardError
    from mlwarden.memory.keys import load_public, refuse_key_inside

    given = [x for x in (key_path, keyring_service, public_key) if x is not None]
    if len(given) != 1:
        raise CliError("give exactly one of --key FILE, --keyring SERVICE or --public-key FILE")
    if public_key is None:
        return _private_key(key_path, keyring_service, trees, create=False).public_key()
    try:
        # A public key inside the tree could be swapped for the attacker's own.
        refuse_key_inside(Path(public_key), trees)
        return load_public(Path(public_key))
    except MemoryGuardError as exc:
        raise CliError(str(exc)) from exc


def _emit(report: Report, fmt: str, output: str | None, verbose: bool,
          out: IO[str] | None = None) -> None:
    stream = out if out is not None else sys.stdout
    if output is not None:
        buf = io.StringIO()
        render(report, fmt, buf)
        write_output(output, buf.getvalue())
    elif fmt == "table":
        render_table(report, stream, verbose=verbose)
    else:
        render(report, fmt, stream)


def _allow_hosts(root: Path, extra: tuple[str, ...]) -> tuple[str, ...]:
    from mlwarden.memory.discover import load_config_allow_hosts

    return tuple(dict.fromkeys(load_config_allow_hosts(root) + extra))


# ----------------------------------------------------------------------------- group

@click.group()
def memory() -> None:
    """Integrity of agent instruction files: CLAUDE.md, AGENTS.md, .cursorrules, MCP configs.

    \b
    discover  list the files agents load as instructions, with content checks
    check     content-check instruction files (hidden Unicode, exfiltration, permissions)
    seal      sign a manifest of them (Ed25519); verify/exec/watch enforce it
    encrypt   keep them under authenticated encryption (decrypt, edit)
    """


@memory.command()
@click.argument("root", default=".", type=click.Path(file_okay=False))
@_discovery_options
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Hosts that URLs may point to without an exfiltration finding.")
@_output_options("suspicious")
def discover(root: str, globs: tuple[str, ...], excludes: tuple[str, ...], home: bool,
             no_default_excludes: bool, allow_hosts: tuple[str, ...], fmt: str,
             output: str | None, fail_on: str, verbose: bool) -> None:
    """List the instruction files agents would load from ROOT (and home), content-checked."""
    from mlwarden.memory.content import DEFAULT_ALLOW_HOSTS, CheckOptions
    from mlwarden.memory.inventory import inventory

    r = _root(root)
    settings = _settings(r, globs, excludes, home, no_default_excludes)
    hosts = DEFAULT_ALLOW_HOSTS + _allow_hosts(r, allow_hosts)
    inv = inventory(r, settings, CheckOptions(hosts), "memory discover")
    _emit(inv.report, fmt, output, verbose)
    threshold = FAIL_ON[fail_on]
    sys.exit(0 if threshold is None else exit_code(inv.report, threshold))


@memory.command()
@click.argument("paths", nargs=-1)
@_discovery_options
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Hosts that URLs may point to without an exfiltration finding.")
@_output_options("suspicious")
def check(paths: tuple[str, ...], globs: tuple[str, ...], excludes: tuple[str, ...],
          home: bool, no_default_excludes: bool, allow_hosts: tuple[str, ...], fmt: str,
          output: str | None, fail_on: str, verbose: bool) -> None:
    """Content-check instruction files: directories are discovered, files checked as given.

    Finds invisible Unicode (tag characters, bidi overrides, zero-width characters),
    exfiltration wording (secrets next to foreign URLs, curl | sh, base64 blobs, instruction
    overrides) and permission escalation in agent and MCP configuration.
    """
    import dataclasses
    import time

    from mlwarden.memory.content import DEFAULT_ALLOW_HOSTS, CheckOptions
    from mlwarden.memory.discover import (
        CONFIG_KINDS,
        PROJECT_PATTERNS,
        InstructionFile,
        glob_regex,
    )
    from mlwarden.memory.fileio import read_state
    from mlwarden.memory.inventory import (
        CHECK_LIMIT,
        content_findings,
        file_result,
        identity_finding,
        inventory,
    )

    start = time.monotonic()
    results: list[FileResult] = []
    for p in paths or (".",):
        path = Path(p)
        if path.is_dir():
            settings = _settings(path, globs, excludes, home, no_default_excludes)
            opts = CheckOptions(DEFAULT_ALLOW_HOSTS + _allow_hosts(path, allow_hosts))
            found = inventory(path, settings, opts, "memory check").report.files
            # Several roots would otherwise list the same "CLAUDE.md" twice: like scan, paths
            # start with the argument as given (home files keep their ~/ names).
            results.extend(fr if p in (".", "./") or fr.path.startswith("~") else
                           dataclasses.replace(fr, path=f"{p.rstrip('/')}/{fr.path}")
                           for fr in found)
            continue
        if not os.path.lexists(path):
            raise CliError(f"{p}: no such file or directory")
        name = path.name
        kind, agent, desc, config = "custom", "unknown", "checked as given", \
            name.endswith(".json")
        for pat in PROJECT_PATTERNS:
            if glob_regex(pat.glob).match(name) or glob_regex(pat.glob).match(path.as_posix()):
                kind, agent, desc, config = pat.kind, pat.agent, pat.description, pat.config
                break
        if config and kind not in CONFIG_KINDS:
            kind = "mcp-config"
        f = InstructionFile(p, path, kind, agent, desc)
        state = read_state(path, keep=CHECK_LIMIT)
        opts = CheckOptions(DEFAULT_ALLOW_HOSTS + allow_hosts)
        results.append(file_result(f, state, [identity_finding(f, state),
                                              *content_findings(f, state, opts)]))
    report = Report("memory check", tuple(results), time.monotonic() - start)
    _emit(report, fmt, output, verbose)
    threshold = FAIL_ON[fail_on]
    sys.exit(0 if threshold is None else exit_code(report, threshold))


@memory.command()
@click.argument("root", default=".", type=click.Path(file_okay=False))
@_key_options()
@click.option("--seal", "seal_file", type=click.Path(dir_okay=False),
              help="Seal file (default ROOT/.mlwarden/memory.seal). Outside ROOT it also "
                   "resists rollback to an older seal.")
@_discovery_options
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="Hosts that URLs may point to without an exfiltration finding (recorded "
                   "in the seal).")
@click.option("--snapshot/--no-snapshot", default=True, show_default=True,
              help="Store compressed contents in the seal so verify can show diffs.")
@click.option("--force", is_flag=True, help="Seal even content judged malicious.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here.")
@click.option("--verbose", "-v", is_flag=True, help="Show informational findings too.")
def seal(root: str, key_path: str | None, keyring_service: str | None, seal_file: str | None,
         globs: tuple[str, ...], excludes: tuple[str, ...], home: bool,
         no_default_excludes: bool, allow_hosts: tuple[str, ...], snapshot: bool, force: bool,
         fmt: str, output: str | None, verbose: bool) -> None:
    """Record an Ed25519-signed manifest of every instruction file under ROOT.

    The key file is created (mode 0600) if missing and must live outside ROOT. Re-run after
    every intended change to the instruction files.
    """
    from mlwarden.memory.seal import SealRefused
    from mlwarden.memory.seal import seal as do_seal
    from mlwarden.util.fs import LockedError

    r = _root(root)
    private = _private_key(key_path, keyring_service, _guard_trees(r, home), create=True)
    settings = _settings(r, globs, excludes, home, no_default_excludes)
    try:
        outcome = do_seal(r, private, settings, _allow_hosts(r, allow_hosts),
                          Path(seal_file) if seal_file else None, snapshot,
                          refuse_malicious=not force)
    except SealRefused as exc:
        _emit(exc.report, fmt, output, verbose, out=sys.stderr if fmt == "table" else None)
        click.echo(f"mlwarden: {exc}; review the files, or seal anyway with --force",
                   err=True)
        sys.exit(1)
    except (LockedError, OSError) as exc:
        raise CliError(f"cannot write the seal: {exc}") from exc
    _emit(outcome.report, fmt, output, verbose)
    click.echo(f"sealed {len(outcome.manifest.entries)} file(s) into {outcome.seal_path} "
               f"(key id {outcome.manifest.key_id})", err=True)


def _run_verify(root: Path, key_path: str | None, keyring_service: str | None,
                public_key: str | None, seal_file: str | None,
                allow_hosts: tuple[str, ...]) -> Any:
    from mlwarden.memory.seal import verify

    # The seal records whether home files are covered; guard home dirs whenever they could be.
    public = _public_key(key_path, keyring_service, public_key, _guard_trees(root, True))
    return verify(root, public, Path(seal_file) if seal_file else None, allow_hosts)


def _print_changes(outcome: Any, out: IO[str]) -> None:
    for key, diff in outcome.diffs.items():
        out.write(f"\n--- diff of {key} (sealed -> current) ---\n{diff}")
    if outcome.changes:
        out.write("\nchanges since the seal:\n")
        for c in outcome.changes:
            out.write(f"  {c.change:9} {c.path}: {c.detail}\n")


@memory.command()
@click.argument("root", default=".", type=click.Path(file_okay=False))
@_key_options(public=True)
@click.option("--seal", "seal_file", type=click.Path(dir_okay=False),
              help="Seal file (default ROOT/.mlwarden/memory.seal).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
              help="More hosts to allow in URLs (added to those in the seal).")
@click.option("--diff/--no-diff", default=True, show_default=True,
              help="Show a unified diff of modified files (table output).")
@_output_options("malicious")
def verify(root: str, key_path: str | None, keyring_service: str | None,
           public_key: str | None, seal_file: str | None, allow_hosts: tuple[str, ...],
           diff: bool, fmt: str, output: str | None, fail_on: str, verbose: bool) -> None:
    """Check the seal's signature and every instruction file against it.

    Exits nonzero when a file was modified, deleted or added, when the seal is missing or
    its signature does not verify, or on content findings at or above --fail-on.
    """
    from mlwarden.memory.seal import failing_exit

    outcome = _run_verify(_root(root), key_path, keyring_service, public_key, seal_file,
                          allow_hosts)
    _emit(outcome.report, fmt, output, verbose)
    if fmt == "table" and output is None and diff:
        _print_changes(outcome, sys.stdout)
    sys.exit(failing_exit(outcome.report, FAIL_ON[fail_on]))


class _DashDashCommand(click.Command):
    """Splits argv at ``--`` before click parses it: the rest is the agent's command line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            ctx.meta["mlwarden.exec.argv"] = args[i + 1:]
            args = args[:i]
        else:
            ctx.meta["mlwarden.exec.argv"] = []
        return super().parse_args(ctx, args)


def _restore_encrypted(root: Path, key: Any) -> list[str]:
    """Write the plaintext of every ROOT/**.mlwenc to its logical name (if it differs)."""
    from mlwarden.memory.crypt import logical_name, read_encrypted
    from mlwarden.memory.discover import DiscoverySettings, discover
    from mlwarden.memory.keys import aead_key
    from mlwarden.util.fs import atomic_write_bytes

    written = []
    k = aead_key(key)
    for f in discover(root, DiscoverySettings(home=False)).files:
        if not f.is_encrypted:
            continue
        plaintext = read_encrypted(f.path, k, root)
        target = root / logical_name(f.path, root)
        try:
            current = target.read_bytes() if target.is_file() else None
        except OSError:
            current = None
        if current != plaintext:
            atomic_write_bytes(target, plaintext)
            written.append(str(target))
    return written


@memory.command("exec", cls=_DashDashCommand,
                context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("root", default=".", type=click.Path(file_okay=False))
@_key_options(public=True)
@click.option("--seal", "seal_file", type=click.Path(dir_okay=False),
              help="Seal file (default ROOT/.mlwarden/memory.seal).")
@click.option("--decrypt", "restore", is_flag=True,
              help="First write the authenticated plaintext of every ROOT/**.mlwenc to its "
                   "original name (needs the private key).")
@click.option("--replace/--no-replace", default=True, show_default=True,
              help="Replace this process with the command (execvp), or run it as a child "
                   "and pass its exit status through.")
@click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default="malicious",
              show_default=True,
              help="Least severe content-check verdict that also refuses the start.")
@click.option("--quiet", "-q", is_flag=True, help="Say nothing when verification passes.")
@click.pass_context
def exec_cmd(ctx: click.Context, root: str, key_path: str | None, keyring_service: str | None,
             public_key: str | None, seal_file: str | None, restore: bool, replace: bool,
             fail_on: str, quiet: bool) -> None:
    """Verify ROOT against its seal, then start the agent: exec [ROOT] -- CMD [ARGS...].

    If verification fails the command is not started and the exit status is nonzero.
    """
    from mlwarden.memory.errors import MemoryGuardError
    from mlwarden.memory.seal import failing_exit

    argv: list[str] = ctx.meta.get("mlwarden.exec.argv", [])
    if not argv:
        raise CliError("no command given: use mlwarden memory exec [ROOT] -- CMD [ARGS...]")
    r = _root(root)
    if restore:
        key = _private_key(key_path, keyring_service, _guard_trees(r, True), create=False)
        try:
            for path in _restore_encrypted(r, key):
                if not quiet:
                    click.echo(f"mlwarden: restored {path} from its encrypted copy", err=True)
        except MemoryGuardError as exc:
            click.echo(f"mlwarden: refusing to start {argv[0]}: {exc}", err=True)
            sys.exit(1)
    outcome = _run_verify(r, key_path, keyring_service, public_key, seal_file, ())
    status = failing_exit(outcome.report, FAIL_ON[fail_on])
    if status != 0:
        render_table(outcome.report, sys.stderr)
        _print_changes(outcome, sys.stderr)
        click.echo(f"mlwarden: refusing to start {argv[0]}: instruction files do not match "
                   f"the seal or failed content checks", err=True)
        sys.exit(status)
    if not quiet:
        n = sum(1 for fr in outcome.report.files)
        click.echo(f"mlwarden: {n} instruction file(s) verified; starting {argv[0]}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if replace and hasattr(os, "execvp"):
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            click.echo(f"mlwarden: cannot start {argv[0]}: {exc.strerror}", err=True)
            sys.exit(127)
    try:
        proc = subprocess.run(argv, check=False)
    except OSError as exc:
        click.echo(f"mlwarden: cannot start {argv[0]}: {exc.strerror}", err=True)
        sys.exit(127)
    sys.exit(proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)


@memory.command()
@click.argument("root", default=".", type=click.Path(file_okay=False))
@_key_options(public=True)
@click.option("--seal", "seal_file", type=click.Path(dir_okay=False),
              help="Seal file (default ROOT/.mlwarden/memory.seal).")
@click.option("--on-change", "actions", multiple=True,
              type=click.Choice(["log", "webhook", "exit"]),
              help="What to do on a change (repeatable; default log). 'exit' stops with a "
                   "nonzero status.")
@click.option("--webhook", "webhook_url", metavar="URL",
              help="POST a JSON notice here on every change (implies --on-change webhook).")
@click.option("--once", is_flag=True, help="Stop after the first change (nonzero exit).")
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds.")
@click.option("--debounce", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Seconds of quiet after an event before re-verifying.")
def watch(root: str, key_path: str | None, keyring_service: str | None,
          public_key: str | None, seal_file: str | None, actions: tuple[str, ...],
          webhook_url: str | None, once: bool, timeout: float | None, debounce: float) -> None:
    """Re-verify on every filesystem change to the instruction files and notify.

    Exit status: nonzero when it stops on a change (--once, --on-change exit), otherwise
    the status of the last verification when --timeout ends the watch.
    """
    from mlwarden.memory.seal import failing_exit, seal_path_for
    from mlwarden.memory.seal import verify as do_verify
    from mlwarden.memory.watch import (
        Notifier,
        log_notifier,
        watch_dirs_for,
        webhook_notifier,
    )
    from mlwarden.memory.watch import watch as do_watch

    r = _root(root)
    acts = set(actions) or {"log"}
    if webhook_url:
        acts.add("webhook")
        if not webhook_url.lower().startswith(("http://", "https://")):
            raise CliError("--webhook must be an http:// or https:// URL")
    if "webhook" in acts and not webhook_url:
        raise CliError("--on-change webhook needs --webhook URL")
    public = _public_key(key_path, keyring_service, public_key, _guard_trees(r, True))
    seal_p = seal_path_for(r, Path(seal_file) if seal_file else None)
    notifiers: list[Notifier] = [log_notifier()]  # always leave a trace on stderr
    if "webhook" in acts and webhook_url:
        notifiers.append(webhook_notifier(webhook_url, on_error=_warn))

    def verify_once() -> Any:
        return do_verify(r, public, seal_p)

    def ready() -> None:
        click.echo(f"mlwarden: watching {r} (seal {seal_p})", err=True)

    outcome = do_watch(verify_once, watch_dirs_for(r, seal_p, None, True), notifiers, str(r),
                       debounce=debounce, stop_on_change=once or "exit" in acts,
                       timeout=timeout, ready=ready)
    sys.exit(failing_exit(outcome.report, Verdict.MALICIOUS))


# ----------------------------------------------------------------------------- encryption

def _aead(key_path: str | None, keyring_service: str | None, root: Path,
          create: bool) -> bytes:
    from mlwarden.memory.keys import aead_key

    return aead_key(_private_key(key_path, keyring_service, _guard_trees(root, True), create))


def _enc_root(path: Path, root: str | None) -> Path:
    from mlwarden.memory.crypt import find_root

    return Path(root) if root else find_root(path)


@memory.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_key_options()
@click.option("--root", type=click.Path(file_okay=False),
              help="Project root the file names are bound relative to (default: nearest "
                   "directory holding .mlwarden or .git).")
@click.option("--in-place", is_flag=True,
              help="Replace FILE by its ciphertext instead of writing FILE.mlwenc.")
@click.option("--remove-plaintext", is_flag=True,
              help="Delete FILE after writing FILE.mlwenc.")
def encrypt(files: tuple[str, ...], key_path: str | None, keyring_service: str | None,
            root: str | None, in_place: bool, remove_plaintext: bool) -> None:
    """Encrypt instruction files with ChaCha20-Poly1305, bound to their relative path."""
    from mlwarden.memory.crypt import MAX_PLAINTEXT, encrypt_bytes, is_encrypted, logical_name
    from mlwarden.memory.discover import ENCRYPTED_SUFFIX
    from mlwarden.memory.errors import MemoryGuardError
    from mlwarden.memory.fileio import read_bounded
    from mlwarden.util.fs import atomic_write_bytes

    for name in files:
        path = Path(name)
        r = _enc_root(path, root)
        key = _aead(key_path, keyring_service, r, create=True)
        try:
            data = read_bounded(path, MAX_PLAINTEXT)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {name}: {exc}") from exc
        if is_encrypted(data):
            raise CliError(f"{name} is already encrypted")
        out = path if in_place else path.with_name(path.name + ENCRYPTED_SUFFIX)
        try:
            bound = logical_name(path, r)
            mode = os.stat(path).st_mode & 0o777
            atomic_write_bytes(out, encrypt_bytes(data, key, bound), mode=mode)
            if remove_plaintext and not in_place:
                path.unlink()
        except MemoryGuardError as exc:
            raise CliError(str(exc)) from exc
        except OSError as exc:
            raise CliError(f"cannot write {out}: {exc.strerror or exc}") from exc
        click.echo(f"encrypted {name} -> {out} (bound to {bound!r})", err=True)


@memory.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_key_options()
@click.option("--root", type=click.Path(file_okay=False),
              help="Project root the file name is bound relative to.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write the plaintext here (atomically) instead of stdout.")
@click.option("--restore", is_flag=True,
              help="Write the plaintext to the file's original name (FILE without .mlwenc).")
def decrypt(file: str, key_path: str | None, keyring_service: str | None, root: str | None,
            output: str | None, restore: bool) -> None:
    """Decrypt FILE after authenticating it; tampered or foreign bytes are rejected."""
    from mlwarden.memory.crypt import logical_name, read_encrypted
    from mlwarden.memory.errors import InvalidCiphertext, MemoryGuardError

    path = Path(file)
    r = _enc_root(path, root)
    key = _aead(key_path, keyring_service, r, create=False)
    try:
        plaintext = read_encrypted(path, key, r)
        target = (r / logical_name(path, r)) if restore else (Path(output) if output else None)
    except InvalidCiphertext as exc:
        click.echo(f"mlwarden: invalid encrypted file: {exc}", err=True)
        sys.exit(1)
    except MemoryGuardError as exc:
        raise CliError(str(exc)) from exc
    if target is None:
        sys.stdout.buffer.write(plaintext) if hasattr(sys.stdout, "buffer") else \
            sys.stdout.write(plaintext.decode("utf-8", "replace"))
        sys.stdout.flush()
        return
    if target.resolve() == path.resolve():
        raise CliError("refusing to overwrite the encrypted file with its plaintext")
    write_output(str(target), plaintext, mode=0o600 if output else 0o644)
    click.echo(f"decrypted {file} -> {target}", err=True)


@memory.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_key_options()
@click.option("--root", type=click.Path(file_okay=False),
              help="Project root the file name is bound relative to.")
@click.option("--editor", metavar="CMD", help="Editor command (default $VISUAL, $EDITOR, vi).")
def edit(file: str, key_path: str | None, keyring_service: str | None, root: str | None,
         editor: str | None) -> None:
    """Decrypt FILE to a private temp file, open the editor, re-encrypt atomically.

    A missing FILE is created. If FILE changes on disk while you edit, nothing is written.
    """
    import hashlib
    import shutil
    import tempfile

    from mlwarden.memory.crypt import (
        MAX_PLAINTEXT,
        decrypt_bytes,
        encrypt_bytes,
        logical_name,
    )
    from mlwarden.memory.errors import InvalidCiphertext, MemoryGuardError
    from mlwarden.memory.fileio import read_bounded
    from mlwarden.util.fs import LockedError, atomic_write_bytes, file_lock

    path = Path(file)
    r = _enc_root(path, root)
    key = _aead(key_path, keyring_service, r, create=True)
    try:
        bound = logical_name(path, r)
    except MemoryGuardError as exc:
        raise CliError(str(exc)) from exc
    lock = Path(tempfile.gettempdir()) / ("mlwarden-edit-" + hashlib.sha256(
        os.path.abspath(path).encode()).hexdigest()[:16] + ".lock")
    cmd = shlex.split(editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    try:
        with file_lock(lock, blocking=False):
            def current() -> bytes | None:
                try:
                    return read_bounded(path, MAX_PLAINTEXT + 64)
                except FileNotFoundError:
                    return None
            before = current()
            plaintext = b"" if before is None else decrypt_bytes(before, key, bound)
            tmpdir = tempfile.mkdtemp(prefix="mlwarden-edit-")  # mode 0700
            try:
                tmp = Path(tmpdir) / Path(bound).name
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(plaintext)
                try:
                    rc = subprocess.run([*cmd, str(tmp)], check=False).returncode
                except OSError as exc:
                    raise CliError(f"cannot start editor {cmd[0]}: {exc.strerror}") from exc
                if rc != 0:
                    raise CliError(f"editor exited with status {rc}; nothing written")
                edited = read_bounded(tmp, MAX_PLAINTEXT)
            finally:
                shutil.rmtree(tmpdir, ignore_errors=True)
            if edited == plaintext and before is not None:
                click.echo(f"{file}: no changes", err=True)
                return
            if current() != before:
                raise CliError(f"{file} changed on disk while you were editing; nothing "
                               f"written (your edit is lost: re-run edit)")
            mode = os.stat(path).st_mode & 0o777 if before is not None else 0o644
            atomic_write_bytes(path, encrypt_bytes(edited, key, bound), mode=mode)
            click.echo(f"re-encrypted {file} (bound to {bound!r})", err=True)
    except InvalidCiphertext as exc:
        click.echo(f"mlwarden: invalid encrypted file: {exc}", err=True)
        sys.exit(1)
    except LockedError as exc:
        raise CliError(f"{file} is being edited by another mlwarden process") from exc
    except (MemoryGuardError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc


@memory.command("public-key")
@_key_options()
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write the PEM public key here.")
def public_key_cmd(key_path: str | None, keyring_service: str | None,
                   output: str | None) -> None:
    """Print the public key (PEM) for verify --public-key, and its key id."""
    from mlwarden.memory.keys import key_id, public_pem

    pub = _private_key(key_path, keyring_service, [], create=False).public_key()
    pem = public_pem(pub)
    if output:
        write_output(output, pem)
        click.echo(f"wrote public key {output} (key id {key_id(pub)})", err=True)
    else:
        click.echo(pem.decode(), nl=False)
        click.echo(f"key id {key_id(pub)}", err=True)
