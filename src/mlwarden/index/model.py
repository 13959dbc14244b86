"""Records of the package index. All frozen: a page is rendered from one consistent view."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from mlwarden.report.model import Finding, Location, Severity, Verdict


class State(str, enum.Enum):
    ADMITTED = "admitted"  # served
    HELD = "held"  # pending review (or waiting to be old enough); not served
    REFUSED = "refused"  # never served


class Origin(str, enum.Enum):
    INTERNAL = "internal"
    UPSTREAM = "upstream"


@dataclass(frozen=True)
class IndexFile:
    """One distribution file the index has decided about."""

    filename: str
    project: str  # canonical
    version: str
    kind: str  # wheel | sdist
    origin: Origin
    state: State
    sha256: str | None  # the bytes held (admitted, held); None when none were kept
    size: int | None
    requires_python: str | None = None
    metadata_sha256: str | None = None  # PEP 658 core metadata (wheels)
    upload_time: float | None = None
    yanked: str | None = None  # None: not yanked; "" yanked without a reason
    upstream_url: str | None = None
    upstream_sha256: str | None = None
    findings: tuple[Finding, ...] = ()
    decided_at: float = 0.0
    decided_by: str = ""
    hold_until: float | None = None  # held only for age: admitted on request after this
    fetch_seconds: float = 0.0
    inspect_seconds: float = 0.0

    @property
    def served(self) -> bool:
        return self.state is State.ADMITTED and self.sha256 is not None

    @property
    def verdict(self) -> Verdict:
        return Verdict.worst(f.verdict for f in self.findings)


@dataclass(frozen=True)
class Candidate:
    """A file listed by the upstream that passed the name and release checks."""

    filename: str
    project: str
    version: str
    kind: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: str | None
    upload_time: float | None
    size: int | None = None


@dataclass(frozen=True)
class Decision:
    """What the policy made of a file: its state and the findings behind it."""

    state: State
    findings: tuple[Finding, ...] = ()
    hold_until: float | None = None
    final: bool = False  # a refusal no reviewer may override (hash mismatch, confusion, ...)

    @property
    def reasons(self) -> str:
        return "; ".join(f"{f.rule}: {f.message}" for f in self.findings
                         if f.severity is not Severity.INFO) or "-"


@dataclass
class AdmissionTimes:
    fetch: float = 0.0
    inspect: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def findings_to_json(findings: tuple[Finding, ...]) -> str:
    return json.dumps([{"rule": f.rule, "severity": f.severity.value, "verdict": f.verdict.value,
                        "message": f.message, "member": f.location.member if f.location else None,
                        "line": f.location.line if f.location else None}
                       for f in findings])


def findings_from_json(text: str | None) -> tuple[Finding, ...]:
    if not text:
        return ()
    out: list[Finding] = []
    raw: Any = json.loads(text)
    for d in raw:
        loc = Location(member=d.get("member"), line=d.get("line")) \
            if d.get("member") or d.get("line") else None
        out.append(Finding(d["rule"], Severity(d["severity"]), Verdict(d["verdict"]),
                           d["message"], loc))
    return tuple(out)
