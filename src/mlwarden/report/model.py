"""The one result model shared by every command: findings, per-file results, reports."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Verdict(enum.Enum):
    """Per-file verdict. Ordered by how much it should worry a user."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    UNSCANNABLE = "unscannable"
    MALICIOUS = "malicious"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]

    @staticmethod
    def worst(verdicts: Iterable[Verdict]) -> Verdict:
        return max(verdicts, key=lambda v: v.rank, default=Verdict.CLEAN)


# Unscannable outranks suspicious: "we could not look" is worse than "we looked and
# saw something odd", and it drives exit status 2 ahead of 3.
_VERDICT_RANK = {
    Verdict.CLEAN: 0,
    Verdict.SUSPICIOUS: 1,
    Verdict.UNSCANNABLE: 2,
    Verdict.MALICIOUS: 3,
}


class Severity(enum.Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Location:
    """Where a finding sits. Text files use line/column, binary files byte offsets."""

    member: str | None = None  # path inside a container (zip member, tar entry)
    line: int | None = None
    column: int | None = None
    offset: int | None = None
    detail: str | None = None  # free-form: "pickle #2", "tensor 'w'", "metadata key"

    def __str__(self) -> str:
        parts: list[str] = []
        if self.member:
            parts.append(self.member)
        if self.line is not None:
            parts.append(f"line {self.line}" + (f":{self.column}" if self.column else ""))
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        if self.detail:
            parts.append(self.detail)
        return ", ".join(parts)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    verdict: Verdict
    message: str
    location: Location | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "verdict": self.verdict.value,
            "message": self.message,
            "location": str(self.location) if self.location else None,
        }


@dataclass(frozen=True)
class FileResult:
    """The verdict on one file or archive member (path ``ARCHIVE!member``)."""

    path: str
    format: str
    verdict: Verdict
    size: int | None
    sha256: str | None
    findings: tuple[Finding, ...] = ()
    parent: str | None = None  # archive entry this member came from
    # Where sha256 came from when it was not hashed here ("lfs-metadata" for remote files).
    sha256_source: str | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "path": self.path,
            "format": self.format,
            "verdict": self.verdict.value,
            "size": self.size,
            "sha256": self.sha256,
            "parent": self.parent,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.sha256_source is not None:
            d["sha256_source"] = self.sha256_source
        return d


@dataclass(frozen=True)
class Report:
    """Everything one command run found, in the order files were given."""

    command: str
    files: tuple[FileResult, ...]
    elapsed_seconds: float = 0.0
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return Verdict.worst(f.verdict for f in self.files)

    def counts(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for f in self.files:
            counts[f.verdict.value] += 1
        return counts

    def summary(self) -> dict[str, object]:
        return {
            "files": len(self.files),
            "verdicts": self.counts(),
            "findings": sum(len(f.findings) for f in self.files),
            "verdict": self.verdict.value,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def exit_code(report: Report, fail_on: Verdict = Verdict.SUSPICIOUS) -> int:
    """Documented exit status: 0 clean, 1 malicious, 2 unscannable, 3 suspicious.

    ``fail_on`` is the least severe verdict that still fails the run; verdicts
    below it exit 0.
    """
    worst = report.verdict
    if worst.rank < fail_on.rank or worst is Verdict.CLEAN:
        return 0
    return {Verdict.MALICIOUS: 1, Verdict.UNSCANNABLE: 2, Verdict.SUSPICIOUS: 3}[worst]
