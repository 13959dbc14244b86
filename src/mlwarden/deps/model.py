"""What the parsers extract from dependency inputs: requirements and index settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from mlwarden.report.model import Finding


@dataclass(frozen=True)
class Dep:
    """One dependency as declared (requirement, lock entry or installed distribution)."""

    name: str  # canonical (PEP 503) name
    raw_name: str
    path: str
    line: int | None = None
    specifier: str = ""  # "" when unconstrained; "==1.2" for exact pins
    version: str | None = None  # exact version when pinned, locked or installed
    hashes: tuple[str, ...] = ()
    url: str | None = None  # direct URL / VCS / local path requirement
    editable: bool = False
    marker: str | None = None
    index: str | None = None  # index the dependency is bound to (uv sources, poetry source)
    origin: str = "requirement"  # requirement | constraint | pyproject | lock | installed

    @staticmethod
    def canonical(name: str) -> str:
        return str(canonicalize_name(name))


@dataclass(frozen=True)
class IndexSetting:
    """An index-related configuration value (pip options, uv/poetry index tables)."""

    path: str
    line: int | None
    key: str  # index-url | extra-index-url | trusted-host | find-links | index-strategy | index
    value: str
    name: str | None = None  # named index (uv [[index]], poetry source)
    explicit: bool = False  # uv explicit = true / poetry priority = "explicit"
    priority: str | None = None  # poetry source priority


@dataclass
class Parsed:
    """Everything one input file yielded. Mutable while its parser fills it in."""

    path: str
    format: str
    deps: list[Dep] = field(default_factory=list)
    indexes: list[IndexSetting] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    internal: list[str] = field(default_factory=list)  # [tool.mlwarden] internal-packages
    mlwarden_index: list[str] = field(default_factory=list)  # [tool.mlwarden] index-url
    deployment: bool = False  # pins and hashes are expected (deployment requirement files)
    require_hashes: bool = False
