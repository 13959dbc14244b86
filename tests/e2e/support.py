"""End-to-end helpers: every test runs ``python -m mlwarden`` in a subprocess, as a user
would, inside a tmp dir. Fixtures are written by the tests; nothing here is ever loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

USAGE = 4


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def env() -> dict[str, str]:
    e = dict(os.environ)
    # No network, no user agent files, a wide table.
    e.update({"HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"})
    return e


def mlw(*args: str | Path, cwd: Path | None = None, timeout: float = 60,
        home: Path | None = None) -> Run:
    e = env()
    if home is not None:
        e["HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "mlwarden", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=e)
    return Run(tuple(map(str, args)), proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(r: Run, code: int = USAGE) -> None:
    """A bad input: the documented status, no traceback, one clear error line on stderr."""
    assert r.code == code, (r.args, r.code, r.err)
    assert "Traceback" not in r.err and "Traceback" not in r.out, (r.args, r.err)
    errors = [line for line in r.err.splitlines()
              if line.startswith(("mlwarden: error:", "Error:"))]
    assert len(errors) == 1, (r.args, r.err)


def pickle_call(module: str, name: str, arg: str) -> bytes:
    """A protocol-2 pickle calling ``module.name(arg)`` (GLOBAL + REDUCE), never loaded."""
    return (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
            + b"X" + len(arg.encode()).to_bytes(4, "little") + arg.encode() + b"\x85R.")
