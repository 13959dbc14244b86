"""What a reader gets while it scans one entry: its bounds, a place to put findings, and a
way to hand nested content (archive members) back to the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlwarden.report.model import FileResult, Finding, Location, Severity, Verdict
from mlwarden.report.rules import Rule, rule
from mlwarden.scan.source import Source

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds that keep hostile input from costing unbounded time or memory."""

    max_depth: int = 6  # nesting of archives inside archives
    max_members: int = 100_000  # entries per archive
    max_member_bytes: int = 4 * GiB  # decompressed size of one member
    max_total_bytes: int = 16 * GiB  # decompressed bytes per top-level file
    max_ratio: float = 250.0  # decompressed / compressed, per member
    max_pickle_bytes: int = 1 * GiB  # pickle stream read into memory
    max_pickle_ops: int = 20_000_000  # opcodes interpreted per pickle stream
    max_text_bytes: int = 64 * MiB  # text/JSON/source files analysed
    max_header_bytes: int = 100 * MiB  # safetensors/GGUF/npy headers


# Rules every reader may use; format-specific rules live beside their readers.
UNSCANNABLE_ERROR = rule(
    "scan-error",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "The file could not be parsed completely",
    "The content is malformed or truncated, so part of it was not analysed. A loader "
    "might still accept it; treat it as untrusted.",
)
LIMIT_EXCEEDED = rule(
    "limit-exceeded",
    Verdict.UNSCANNABLE,
    Severity.MEDIUM,
    "A scan bound was reached before the analysis finished",
    "Depth, size, member-count or opcode bounds stop hostile input from exhausting the "
    "scanner. Raise the bound with care, or inspect the file by other means.",
)
UNSUPPORTED = rule(
    "unsupported-format",
    Verdict.UNSCANNABLE,
    Severity.LOW,
    "The format is recognised but not analysed",
    "mlwarden knows what this file is but has no analyser for it.",
)
NOT_ANALYSED = rule(
    "not-analysed",
    Verdict.CLEAN,
    Severity.INFO,
    "Content examined and treated as inert data",
    "The bytes match no format that a model loader executes (text, images, unknown "
    "binary data); the file was identified but not parsed further.",
)


@dataclass
class ScanContext:
    """Collector for one entry (a file, or one archive member)."""

    display_path: str
    limits: Limits
    depth: int = 0
    format: str = "unknown"
    findings: list[Finding] = field(default_factory=list)
    members: list[FileResult] = field(default_factory=list)
    # Set by the engine: scans a nested Source and returns its results.
    scan_nested: Callable[..., list[FileResult]] | None = None
    bytes_expanded: int = 0  # decompressed bytes charged against max_total_bytes

    def report(self, r: Rule, message: str, location: Location | None = None) -> Finding:
        f = r.finding(message, location)
        self.findings.append(f)
        return f

    def unscannable(self, message: str, location: Location | None = None) -> None:
        self.report(UNSCANNABLE_ERROR, message, location)

    def limit(self, message: str, location: Location | None = None) -> None:
        self.report(LIMIT_EXCEEDED, message, location)

    def scan_member(self, source: Source) -> Verdict:
        """Scan nested content (an archive member, a decompressed stream) as its own entry.

        Its results are reported as ``ARCHIVE!member`` entries; the verdict is returned so
        the container can decide what to say about it.
        """
        if self.depth + 1 > self.limits.max_depth:
            self.limit(
                f"nesting deeper than {self.limits.max_depth} levels; "
                f"{source.display_path} not scanned"
            )
            return Verdict.UNSCANNABLE
        if self.scan_nested is None:
            raise RuntimeError("scan_member called outside the engine")
        results = self.scan_nested(source, self.depth + 1)
        self.members.extend(results)
        return Verdict.worst(r.verdict for r in results)

    @property
    def verdict(self) -> Verdict:
        return Verdict.worst(
            [f.verdict for f in self.findings] + [m.verdict for m in self.members]
        )
