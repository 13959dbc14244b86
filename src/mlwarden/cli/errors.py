"""Exit codes and the clean error path shared by commands."""

from __future__ import annotations

import click

EXIT_USAGE = 4


class CliError(click.ClickException):
    """A bad input: printed as one line, exits with EXIT_USAGE, never a traceback."""

    exit_code = EXIT_USAGE

    def show(self, file: object = None) -> None:
        click.echo(f"mlwarden: error: {self.format_message()}", err=True)


# click's own usage errors exit 2, which would read as "unscannable".
click.exceptions.UsageError.exit_code = EXIT_USAGE
