"""Renderers: one Report in, text out. The same three serve every command."""

from __future__ import annotations

import errno
from typing import IO, TYPE_CHECKING, Any

import mlwarden
from mlwarden.report.model import FileResult, Report, Severity, Verdict
from mlwarden.report.rules import RULES

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "json", "sarif")


def render(report: Report, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        out.write(to_json(report))
    elif fmt == "sarif":
        out.write(to_sarif(report))
    elif fmt == "table":
        render_table(report, out)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def to_json(report: Report) -> str:
    import json

    doc = {
        "tool": {"name": "mlwarden", "version": mlwarden.__version__},
        "command": report.command,
        "files": [f.to_dict() for f in report.files],
        "summary": report.summary(),
        **({"meta": report.meta} if report.meta else {}),
    }
    return json.dumps(doc, indent=2) + "\n"


# ----------------------------------------------------------------------------- SARIF

_SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads this property (0.0-10.0) to rank alerts.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}


def _artifact_uri(path: str) -> str:
    # Archive members are reported inside their archive file.
    return path.split("!", 1)[0].replace("\\", "/").removeprefix("./")


def to_sarif(report: Report) -> str:
    import json

    used: dict[str, int] = {}
    rules: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    for fr in report.files:
        for f in fr.findings:
            if f.severity is Severity.INFO and f.verdict is Verdict.CLEAN:
                continue
            if f.rule not in used:
                used[f.rule] = len(rules)
                r = RULES.get(f.rule)
                rules.append({
                    "id": f.rule,
                    "name": "".join(p.capitalize() for p in f.rule.replace("/", "-").split("-")),
                    "shortDescription": {"text": r.title if r else f.rule},
                    "fullDescription": {"text": (r.help or r.title) if r else f.rule},
                    "help": {"text": (r.help or r.title) if r else f.rule},
                    "defaultConfiguration": {"level": _SARIF_LEVEL[f.severity]},
                    "properties": {
                        "security-severity": _SECURITY_SEVERITY[f.severity],
                        "tags": ["security", "mlwarden", f.verdict.value],
                    },
                })
            # GitHub code scanning requires startLine; binary findings point at line 1
            # and carry the byte offset as well.
            loc = f.location
            region: dict[str, int] = {"startLine": loc.line if loc and loc.line else 1}
            if loc is not None and loc.line and loc.column:
                region["startColumn"] = loc.column
            if loc is not None and not loc.line and loc.offset is not None and "!" not in fr.path:
                region["byteOffset"] = loc.offset
            message = f.message
            if "!" in fr.path:
                message = f"{fr.path.split('!', 1)[1]}: {message}"
            if loc is not None and str(loc):
                message = f"{message} ({loc})"
            results.append({
                "ruleId": f.rule,
                "ruleIndex": used[f.rule],
                "level": _SARIF_LEVEL[f.severity],
                "message": {"text": message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": _artifact_uri(fr.path)},
                        "region": region,
                    }
                }],
                "properties": {"verdict": f.verdict.value, "fileVerdict": fr.verdict.value},
            })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "mlwarden",
                "version": mlwarden.__version__,
                "informationUri": "https://github.com/mlwarden/mlwarden",
                "rules": rules,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


# ----------------------------------------------------------------------------- table

_VERDICT_STYLE = {
    Verdict.CLEAN: "green",
    Verdict.SUSPICIOUS: "yellow",
    Verdict.UNSCANNABLE: "magenta",
    Verdict.MALICIOUS: "bold red",
}


def make_console(out: IO[str] | None = None, **kwargs: Any) -> Console:
    """A rich Console whose closed pipe raises BrokenPipeError (the CLI exits 141) instead
    of rich's own SystemExit(1), which would read as "malicious"."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError(errno.EPIPE, "stdout closed")

    return _Console(file=out, **kwargs)


def shown_files(report: Report, verbose: bool) -> list[FileResult]:
    """The rows of the table: files that are not clean, or every file with ``verbose``
    (a scan of a thousand clean files is a summary line, not a thousand rows)."""
    if verbose:
        return list(report.files)
    return [fr for fr in report.files if fr.verdict is not Verdict.CLEAN]


def summary_text(report: Report, verbose: bool) -> str:
    """The closing line without markup (the plain table and rich draw the same text)."""
    counts = report.counts()
    parts = [f"{counts[v.value]} {v.value}" for v in Verdict]
    hidden = len(report.files) - len(shown_files(report, verbose))
    note = f" ({hidden} clean not listed; --verbose lists every file)" if hidden else ""
    return (f"{len(report.files)} files: " + ", ".join(parts)
            + f"  —  verdict {report.verdict.value} in {report.elapsed_seconds:.2f}s{note}")


def render_table(report: Report, out: IO[str], verbose: bool = False) -> None:
    """Files that are not clean, then the summary; every file and informational finding
    with ``verbose``."""
    from mlwarden.report import plain_table

    if plain_table.colour_free(out):
        # Without colour the table is drawn without importing rich (start-up cost),
        # byte for byte as rich draws it; plain_table declines whatever it cannot match.
        text = plain_table.draw(report, verbose)
        if text is not None:
            out.write(text)
            out.flush()
            return
    from rich.table import Table

    # Piped output keeps whole paths on one line.
    width = None if getattr(out, "isatty", lambda: False)() else 200
    console = make_console(out, soft_wrap=False, width=width)
    files = shown_files(report, verbose)
    table = Table(title=f"mlwarden {report.command}", show_lines=False, expand=False)
    table.add_column("verdict", no_wrap=True)
    # Paths stay whole (people copy them); the findings column absorbs the squeeze.
    table.add_column("path", no_wrap=True, overflow="fold", min_width=min(
        max((len(f.path) for f in files), default=4), 120))
    table.add_column("format", no_wrap=True)
    table.add_column("findings", overflow="fold", ratio=1)
    rows = []
    for fr in files:
        shown = [f for f in fr.findings if verbose or f.verdict is not Verdict.CLEAN]
        rows.append((
            f"[{_VERDICT_STYLE[fr.verdict]}]{fr.verdict.value}[/]",
            fr.path,
            fr.format,
            "\n".join(_finding_line(f) for f in shown[:8])
            + (f"\n… {len(shown) - 8} more" if len(shown) > 8 else ""),
        ))
    from mlwarden.report.table_rows import print_table

    if rows:
        print_table(table, console, rows)  # = add_row per row + print, without per-row cost
    s = report.summary()
    counts = s["verdicts"]
    assert isinstance(counts, dict)
    parts = [f"[{_VERDICT_STYLE[v]}]{counts[v.value]} {v.value}[/]" for v in Verdict]
    hidden = len(report.files) - len(files)
    note = f" ({hidden} clean not listed; --verbose lists every file)" if hidden else ""
    console.print(
        f"{s['files']} files: " + ", ".join(parts)
        + f"  —  verdict [{_VERDICT_STYLE[report.verdict]}]{report.verdict.value}[/]"
        + f" in {report.elapsed_seconds:.2f}s{note}"
    )


def _finding_line(f: object) -> str:
    from rich.markup import escape

    from mlwarden.report.model import Finding

    assert isinstance(f, Finding)
    loc = f" [dim]({escape(str(f.location))})[/]" if f.location and str(f.location) else ""
    return f"[{_VERDICT_STYLE[f.verdict]}]{f.rule}[/] {escape(f.message)}{loc}"


def summary_line(fr: FileResult) -> str:
    return f"{fr.verdict.value:12} {fr.path}"
