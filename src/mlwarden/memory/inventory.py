"""Discovered instruction files as shared-model results: what each file is, plus the content
checks of what it holds now."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlwarden.memory import rules as R
from mlwarden.memory.content import CheckOptions, check_bytes
from mlwarden.memory.discover import DiscoverySettings, InstructionFile, discover
from mlwarden.memory.fileio import FileState, MiB, read_state
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict

CHECK_LIMIT = 4 * MiB  # content-checked bytes per file


def identity_finding(f: InstructionFile, state: FileState) -> Finding:
    link = f" (symlink to {state.target})" if state.type == "symlink" else ""
    rule = R.ENCRYPTED_FILE if f.is_encrypted else R.INSTRUCTION_FILE
    return rule.finding(f"{f.agent}: {f.description}{link}")


def content_findings(f: InstructionFile, state: FileState,
                     options: CheckOptions) -> list[Finding]:
    """Problems in the file's current content (or why it could not be read)."""
    if state.type == "special" or (state.type == "symlink" and state.sha256 is None):
        return [R.SPECIAL_FILE.finding(state.error or "not a regular file")]
    if state.type == "error" or state.sha256 is None:
        return [R.READ_ERROR.finding(state.error or "unreadable")]
    if f.is_encrypted:
        return []
    if state.content is None:
        return [R.TOO_LARGE.finding(f"{state.size} bytes; content checks stop at "
                                    f"{CHECK_LIMIT} bytes")]
    return check_bytes(state.content, f.is_config, options)


def file_result(f: InstructionFile, state: FileState, findings: list[Finding]) -> FileResult:
    verdict = Verdict.worst(x.verdict for x in findings)
    return FileResult(f.key, f.kind, verdict, state.size, state.sha256, tuple(findings))


@dataclass(frozen=True)
class Inventory:
    report: Report
    files: tuple[InstructionFile, ...]
    states: dict[str, FileState]


def inventory(root: Path, settings: DiscoverySettings, options: CheckOptions,
              command: str, home: Path | None = None) -> Inventory:
    """Discover, read and content-check every instruction file under ``root``."""
    start = time.monotonic()
    found = discover(root, settings, home)
    results: list[FileResult] = []
    states: dict[str, FileState] = {}
    for f in found.files:
        state = read_state(f.path, keep=CHECK_LIMIT)
        states[f.key] = state
        findings = [identity_finding(f, state), *content_findings(f, state, options)]
        results.append(file_result(f, state, findings))
    if found.truncated:
        results.append(FileResult(str(root), "directory", Verdict.UNSCANNABLE, None, None, (
            R.WALK_LIMIT.finding("discovery stopped early", Location(detail="walk bound")),)))
    report = Report(command, tuple(results), time.monotonic() - start,
                    meta={"root": str(root), "discovery": settings.to_dict()})
    return Inventory(report, found.files, states)
