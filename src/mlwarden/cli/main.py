"""The ``mlwarden`` command group. Subcommands load lazily to keep start-up fast."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

import mlwarden

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
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

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
    try:
        return cli.main(args=argv, prog_name="mlwarden", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("mlwarden: interrupted", err=True)
        sys.exit(130)
