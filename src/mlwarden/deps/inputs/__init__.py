"""Parsers for dependency inputs: one module per family of formats, all bounded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlwarden.deps.model import Parsed
from mlwarden.deps.rules import PARSE_ERROR
from mlwarden.report.model import Location

__all__ = ["InputTooLarge", "find_key_line", "find_line", "load_toml", "loc", "read_text",
           "table_line", "tomllib"]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Dependency inputs are small; anything bigger is not a real requirements or lock file.
MAX_INPUT_BYTES = 16 << 20


class InputTooLarge(Exception):
    pass


def read_text(path: Path, limit: int = MAX_INPUT_BYTES) -> str:
    """Read a text input, bounded; undecodable bytes are replaced, never fatal."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"{path} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def load_toml(parsed: Parsed, path: Path) -> tuple[dict[str, Any], list[str]] | None:
    """Parse a TOML input; a failure becomes a parse-error finding on ``parsed``."""
    try:
        text = read_text(path)
        return tomllib.loads(text), text.splitlines()
    except (OSError, InputTooLarge) as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"cannot read: {exc}"))
    except tomllib.TOMLDecodeError as exc:
        parsed.findings.append(PARSE_ERROR.finding(f"invalid TOML: {exc}"))
    except RecursionError:
        parsed.findings.append(PARSE_ERROR.finding("invalid TOML: nesting too deep"))
    return None


def find_line(lines: list[str], needle: str, start: int = 0) -> int | None:
    """1-based line of the first line (from ``start``, 0-based) containing ``needle``."""
    for i in range(max(start, 0), len(lines)):
        if needle in lines[i]:
            return i + 1
    return None


def find_key_line(lines: list[str], key: str, value: str, start: int = 0) -> int | None:
    """Line of ``key = "value"`` (TOML), tolerant of spacing and quoting."""
    for q in ('"', "'"):
        for sep in (" = ", "=", " ="):
            line = find_line(lines, f"{key}{sep}{q}{value}{q}", start)
            if line is not None:
                return line
    return None


def table_line(lines: list[str], header: str) -> int:
    """0-based index of a ``[header]`` line, or 0 when absent (searches then start there)."""
    for i, line in enumerate(lines):
        if line.strip().replace(" ", "") == f"[{header}]":
            return i
    return 0


def loc(line: int | None, detail: str | None = None) -> Location:
    return Location(line=line, detail=detail)
