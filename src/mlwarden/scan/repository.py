"""Repository-level checks, run after every file of a scanned directory has a verdict."""

from __future__ import annotations

from pathlib import Path

from mlwarden.report.model import FileResult, Finding


def check_repository(root: Path, display_root: str,
                     results: list[FileResult]) -> dict[str, list[Finding]]:
    """Extra findings keyed by reported path; ``display_root`` itself for the directory."""
    return {}
