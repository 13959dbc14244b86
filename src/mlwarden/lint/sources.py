"""Find and read the files to lint, with bounds: Python source and notebook code cells."""

from __future__ import annotations

import io
import json
import os
import tokenize
from dataclasses import dataclass, field

MAX_BYTES = 8 * 1024 * 1024  # generated code beyond this is not hand-written loading code
# Directories that hold other people's code or tool state, not the project's own.
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}
SUFFIXES = (".py", ".pyw", ".ipynb")


class Unreadable(Exception):
    """The file cannot be turned into Python source; the message says why."""


class InputError(Exception):
    """A path given on the command line does not exist or is not a file or directory."""


@dataclass(frozen=True)
class SourceText:
    """Python text to lint. Notebooks map each line back to (cell number, line in cell)."""

    text: str
    format: str  # "python" or "notebook"
    size: int
    cells: tuple[tuple[int, int], ...] = field(default=())  # per line (1-based index - 1)

    def locate(self, line: int) -> tuple[int, str | None]:
        if self.format != "notebook" or not 0 < line <= len(self.cells):
            return line, None
        cell, cell_line = self.cells[line - 1]
        return cell_line, f"cell {cell}"


def discover(paths: tuple[str, ...] | list[str]) -> list[str]:
    """Files to lint, in the order given; directories are walked (sorted, no symlinks)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
                out.extend(os.path.join(root, f) for f in sorted(files)
                           if f.endswith(SUFFIXES) and not f.startswith("."))
        elif os.path.isfile(p):
            out.append(p)  # named explicitly (e.g. by pre-commit): lint whatever it is
        else:
            raise InputError(f"no such file or directory: {p}")
    return out


def read(path: str) -> SourceText:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_BYTES:
        raise Unreadable(f"larger than {MAX_BYTES // (1024 * 1024)} MiB; not linted")
    if path.endswith(".ipynb"):
        return _notebook(data)
    return SourceText(_decode(data), "python", len(data))


def _decode(data: bytes) -> str:
    """Decode as Python does: a BOM or a PEP 263 coding cookie, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise Unreadable(f"cannot decode source: {exc}") from exc


def _notebook(data: bytes) -> SourceText:
    try:
        nb = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(f"not a JSON notebook: {exc}") from exc
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise Unreadable("not a notebook: no 'cells' list")
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            continue
        cell_lines = src.splitlines()
        magic_cell = bool(cell_lines) and cell_lines[0].lstrip().startswith("%%")
        for i, text in enumerate(cell_lines, 1):
            stripped = text.lstrip()
            # IPython magics and shell escapes are not Python; keep the line numbering.
            if magic_cell or stripped.startswith(("%", "!")) or stripped.endswith("?"):
                text = ""
            lines.append(text)
            where.append((number, i))
    return SourceText("\n".join(lines) + "\n", "notebook", len(data), tuple(where))
