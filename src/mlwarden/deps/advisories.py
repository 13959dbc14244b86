"""The bundled OSV advisory database and version matching with OSV ECOSYSTEM semantics
(introduced / fixed / last_affected), using packaging for PEP 440 versions and ranges."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

SUPPORTED_SCHEMA = 1


class AdvisoryDBError(Exception):
    pass


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    package: str  # canonical name
    summary: str
    events: tuple[tuple[str, str], ...]  # ("introduced"|"fixed"|"last_affected", version)
    unverified: bool = False
    disputed: bool = False
    condition: str | None = None  # e.g. "untrusted-endpoint": applies only in that setup

    @property
    def fixed(self) -> str | None:
        fixes = [v for k, v in self.events if k == "fixed"]
        return max(fixes, key=_v) if fixes else None

    def label(self) -> str:
        notes = [n for n, on in (("disputed", self.disputed), ("unverified range",
                                                              self.unverified)) if on]
        alias = f" ({', '.join(self.aliases[:2])})" if self.aliases else ""
        return f"{self.id}{alias}{' [' + ', '.join(notes) + ']' if notes else ''}"

    def affects(self, version: str) -> bool:
        """OSV ECOSYSTEM evaluation: walk the events in version order."""
        try:
            v = Version(version)
        except InvalidVersion:
            return False
        affected = False
        for kind, ev in sorted(self.events, key=lambda e: (_v(e[1]), e[0] != "introduced")):
            at = _v(ev)
            if kind == "introduced" and v >= at:
                affected = True
            elif (kind == "fixed" and v >= at) or (kind == "last_affected" and v > at):
                affected = False
        return affected

    def admitted_by(self, specifier: str) -> bool:
        """Whether a version range admits at least one affected version.

        Checked on probe versions (range boundaries of both sides) rather than a release
        list, so it needs no network: an affected interval intersects a specifier set
        exactly when one of these boundary versions lies in both."""
        try:
            spec = SpecifierSet(specifier)
        except InvalidSpecifier:
            return False
        probes: set[Version] = {Version("0")}
        for _, ev in self.events:
            probes.add(_v(ev))
        for s in spec:
            try:
                base = Version(s.version.removesuffix(".*"))
            except InvalidVersion:
                continue
            probes.update({base, Version(f"{base.base_version}.post9999"),
                           Version(f"{base.base_version}.dev0")})
            if s.operator in ("<", "<=") and base.release:
                # The greatest version below an exclusive upper bound.
                rel = list(base.release)
                while rel and rel[-1] == 0:
                    rel.pop()
                if rel:
                    rel[-1] -= 1
                    probes.add(Version(".".join(map(str, [*rel, 9999]))))
        for kind, ev in self.events:
            if kind == "fixed":
                at = _v(ev)
                rel = list(at.release)
                while rel and rel[-1] == 0:
                    rel.pop()
                if rel:
                    rel[-1] -= 1
                    probes.add(Version(".".join(map(str, [*rel, 9999]))))
        return any(self.affects(str(p)) and spec.contains(p, prereleases=True) for p in probes)


def _v(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


@dataclass(frozen=True)
class AdvisoryDB:
    schema_version: int
    db_version: str
    advisories: tuple[Advisory, ...]

    def for_package(self, name: str) -> list[Advisory]:
        key = str(canonicalize_name(name))
        return [a for a in self.advisories if a.package == key]

    def matching(self, name: str, version: str) -> list[Advisory]:
        return [a for a in self.for_package(name) if a.affects(version)]

    def admitted(self, name: str, specifier: str) -> list[Advisory]:
        return [a for a in self.for_package(name) if a.admitted_by(specifier)]


def parse_db(doc: Any) -> AdvisoryDB:
    if not isinstance(doc, dict) or doc.get("schema_version") != SUPPORTED_SCHEMA:
        raise AdvisoryDBError(f"unsupported advisory database schema (expected "
                              f"schema_version {SUPPORTED_SCHEMA})")
    out: list[Advisory] = []
    for rec in doc.get("advisories", []):
        spec = rec.get("database_specific") or {}
        for aff in rec.get("affected", []):
            pkg = aff.get("package", {})
            if pkg.get("ecosystem") != "PyPI":
                continue
            events: list[tuple[str, str]] = []
            for rng in aff.get("ranges", []):
                if rng.get("type") in ("ECOSYSTEM", "SEMVER"):
                    for ev in rng.get("events", []):
                        events += [(k, str(v)) for k, v in ev.items()
                                   if k in ("introduced", "fixed", "last_affected")]
            for ver in aff.get("versions", []):  # explicit version lists are exact matches
                events += [("introduced", str(ver)), ("last_affected", str(ver))]
            out.append(Advisory(
                id=str(rec["id"]), aliases=tuple(rec.get("aliases", [])),
                package=str(canonicalize_name(pkg["name"])), summary=rec.get("summary", ""),
                events=tuple(events), unverified=bool(spec.get("unverified")),
                disputed=bool(spec.get("disputed")), condition=spec.get("condition")))
    return AdvisoryDB(SUPPORTED_SCHEMA, str(doc.get("db_version", "unknown")), tuple(out))


@lru_cache(maxsize=1)
def bundled() -> AdvisoryDB:
    text = resources.files("mlwarden.deps").joinpath("data/advisories.json").read_text(
        encoding="utf-8")
    return parse_db(json.loads(text))


def load(path: str | Path | None = None) -> AdvisoryDB:
    if path is None:
        return bundled()
    try:
        return parse_db(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AdvisoryDBError(f"cannot load advisory database {path}: {exc}") from exc
