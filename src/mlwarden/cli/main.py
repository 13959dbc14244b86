"""The ``mlwarden`` command group. Subcommands load lazily to keep start-up fast."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

import mlwarden
from mlwarden.cli.errors import EXIT_USAGE  # importing it makes usage errors exit 4

EXIT_INTERRUPTED = 130
EXIT_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away

# name -> "module:attribute"; a module that is not present simply hides its command.
COMMANDS: dict[str, str] = {
    "scan": "mlwarden.cli.scan:scan",
    "demo": "mlwarden.cli.demo:demo",
    "rules": "mlwarden.cli.scan:rules",
    "lint": "mlwarden.cli.lint:lint",
    "deps": "mlwarden.cli.deps:deps",
    "doctor": "mlwarden.cli.deps:doctor",
    "memory": "mlwarden.cli.memory:memory",
    "import": "mlwarden.cli.registry:import_cmd",
    "serve": "mlwarden.cli.registry:serve",
    "token": "mlwarden.cli.registry:token",
    "audit": "mlwarden.cli.registry:audit",
    "approve": "mlwarden.cli.registry:approve",
    "pull": "mlwarden.cli.airlock:pull",
    "verify": "mlwarden.cli.airlock:verify",
    "run": "mlwarden.cli.airlock:run",
    "convert": "mlwarden.cli.airlock:convert",
    "sbom": "mlwarden.cli.sbom:sbom",
    "sign": "mlwarden.cli.signing:sign",
    "verify-signature": "mlwarden.cli.signing:verify_signature",
    "log": "mlwarden.cli.log:log",
    "index": "mlwarden.cli.index:index",
    "fleet": "mlwarden.cli.fleet:fleet",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # click itself maps EPIPE to status 1 ("malicious"); a closed pipe is not a verdict.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _silence_stdout()
            raise click.exceptions.Exit(EXIT_PIPE) from None

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        cmd = getattr(module, attr, None)
        return cmd if isinstance(cmd, click.Command) else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mlwarden.__version__, prog_name="mlwarden")
def cli() -> None:
    """mlwarden guards the machine-learning supply chain.

    Exit status of scanning commands: 0 clean, 1 malicious, 2 unscannable (none
    malicious), 3 suspicious only, 4 bad input or usage.
    """


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; always ends in SystemExit with a documented status, never a traceback.

    Click's standalone mode would turn Ctrl-C into "Aborted!" with status 1 (which reads as
    "malicious"), so interrupts are handled here (130), and a closed stdout pipe gives 141.
    """
    status: str | int | None
    try:
        status = _run(argv)
    except SystemExit as exc:  # commands end with sys.exit(verdict status)
        status = exc.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        status = EXIT_PIPE
    sys.exit(status)


def _run(argv: list[str] | None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="mlwarden", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("mlwarden: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except OSError as exc:
        # Last resort for a file-system error a command did not word itself: still one line.
        where = f" ({exc.filename})" if exc.filename else ""
        click.echo(f"mlwarden: error: {exc.strerror or exc}{where}", err=True)
        return EXIT_USAGE
    # --help, --version and ctx.exit(n) return their status in non-standalone mode.
    return rv if isinstance(rv, int) else 0


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
