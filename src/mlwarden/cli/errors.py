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


def write_output(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write a command's output file atomically, or fail with one line and EXIT_USAGE.

    Missing parent directories are created (as pytest --junitxml does: CI jobs write into
    fresh report directories); a parent that is a file, or an unwritable place, is an error.
    """
    import os

    from mlwarden.util.fs import atomic_write_bytes

    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CliError(f"cannot write {path}: {parent} is not a directory")
    try:
        atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, mode)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
