"""``mlwarden index lock``: a hash-pinned requirements file from what the index admitted.

Resolution uses resolvelib (pip's resolver) over admitted files only, with dependencies
read from the core metadata stored at admission (wheels; sdists whose PKG-INFO declares
static dependencies, Metadata-Version 2.2+). Nothing is built or executed, and nothing is
fetched: a dependency the index has not admitted is an error that names it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider

from mlwarden.index.inspection import parse_metadata
from mlwarden.index.model import IndexFile, State
from mlwarden.index.service import IndexService


class LockError(Exception):
    pass


@dataclass(frozen=True)
class Pin:
    project: str
    version: str
    hashes: tuple[str, ...]
    files: tuple[str, ...]
    required_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cand:
    name: str  # identifier: project, or project[extra]
    project: str
    version: Version
    extras: frozenset[str] = frozenset()


class _Provider(AbstractProvider[Requirement, Cand, str]):
    def __init__(self, service: IndexService, env: dict[str, str], python: Version) -> None:
        self.service = service
        self.env = env
        self.python = python
        self.cache: dict[str, list[IndexFile]] = {}
        self.parents: dict[str, set[str]] = {}

    def identify(self, requirement_or_candidate: Any) -> str:
        item = requirement_or_candidate
        if isinstance(item, Cand):
            return item.name
        name = str(canonicalize_name(item.name))
        return f"{name}[{','.join(sorted(item.extras))}]" if item.extras else name

    def get_preference(self, identifier: str, resolutions: Any, candidates: Any,
                       information: Any, backtrack_causes: Any) -> Any:
        return (sum(1 for _ in candidates[identifier]), identifier)

    def files(self, project: str) -> list[IndexFile]:
        if project not in self.cache:
            listing = self.service.storage.files(project, [State.ADMITTED])
            self.cache[project] = [f for f in listing if f.sha256 and f.yanked is None
                                   and self._python_ok(f)]
        return self.cache[project]

    def _python_ok(self, f: IndexFile) -> bool:
        if not f.requires_python:
            return True
        try:
            return SpecifierSet(f.requires_python).contains(self.python, prereleases=True)
        except Exception:
            return True

    def find_matches(self, identifier: str, requirements: Mapping[str, Iterator[Any]],
                     incompatibilities: Mapping[str, Iterator[Any]]) -> list[Cand]:
        project = identifier.split("[", 1)[0]
        extras = frozenset(identifier[len(project) + 1:-1].split(",")) \
            if "[" in identifier else frozenset()
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        versions: set[Version] = set()
        for f in self.files(project):
            try:
                versions.add(Version(f.version))
            except InvalidVersion:
                continue
        ok = [v for v in versions if v not in bad and all(r.specifier.contains(v)
                                                          for r in reqs)]
        if not ok:  # pre-releases only when nothing else fits, as pip does
            ok = [v for v in versions if v not in bad and all(
                r.specifier.contains(v, prereleases=True) for r in reqs)]
        return [Cand(identifier, project, v, extras) for v in sorted(ok, reverse=True)]

    def is_satisfied_by(self, requirement: Requirement, candidate: Cand) -> bool:
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Cand) -> Iterable[Requirement]:
        deps: list[Requirement] = []
        if candidate.extras:  # project[extra] depends on project==version itself
            deps.append(Requirement(f"{candidate.project}=={candidate.version}"))
        for req in self.requires(candidate.project, candidate.version):
            if req.marker is not None:
                envs = [{**self.env, "extra": e} for e in (candidate.extras or {""})]
                if not any(req.marker.evaluate(e) for e in envs):
                    continue
            deps.append(req)
            self.parents.setdefault(str(canonicalize_name(req.name)), set()).add(
                candidate.project)
        return deps

    def requires(self, project: str, version: Version) -> list[Requirement]:
        files = [f for f in self.files(project) if Version(f.version) == version]
        meta = next((f for f in files if f.kind == "wheel" and f.metadata_sha256), None) or \
            next((f for f in files if f.metadata_sha256), None)
        if meta is None or meta.metadata_sha256 is None:
            raise LockError(f"{project} {version}: no stored metadata (admitted before "
                            "metadata was kept?)")
        msg = parse_metadata(self.service.read_blob(meta.metadata_sha256))
        if meta.kind == "sdist":
            mv = str(msg.get("Metadata-Version", "1.0"))
            dynamic = {str(d).lower() for d in msg.get_all("Dynamic") or []}
            if Version(mv) < Version("2.2") or "requires-dist" in dynamic:
                raise LockError(f"{project} {version} is admitted only as an sdist whose "
                                "dependencies are not declared statically; admit a wheel")
        out = []
        for line in msg.get_all("Requires-Dist") or []:
            try:
                out.append(Requirement(str(line)))
            except InvalidRequirement as exc:
                raise LockError(f"{project} {version}: bad Requires-Dist {line!r}: {exc}") \
                    from None
        return out


def read_requirements(path: str) -> list[Requirement]:
    from pathlib import Path

    from mlwarden.deps.inputs.requirements import parse_requirements

    p = Path(path)
    if not p.is_file():
        raise LockError(f"{path}: no such file")
    out: list[Requirement] = []
    for parsed in parse_requirements(p, p.parent):
        for f in parsed.findings:
            if f.rule == "deps-parse-error":
                raise LockError(f"{parsed.path}: {f.message}")
        for d in parsed.deps:
            if d.url is not None:
                raise LockError(f"{parsed.path}:{d.line}: {d.raw_name} is a URL requirement; "
                                "only index requirements can be locked")
            if d.origin == "constraint":
                continue
            text = d.raw_name + d.specifier + (f"; {d.marker}" if d.marker else "")
            try:
                out.append(Requirement(text))
            except InvalidRequirement as exc:
                raise LockError(f"{parsed.path}:{d.line}: {exc}") from None
    return out


def lock(service: IndexService, requirements: Sequence[Requirement],
         python_version: str | None = None) -> list[Pin]:
    from resolvelib import BaseReporter, Resolver
    from resolvelib.resolvers import ResolutionImpossible, ResolverException

    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    if python_version:
        env["python_version"] = ".".join(python_version.split(".")[:2])
        env["python_full_version"] = python_version
    python = Version(python_version or env["python_full_version"].split("+")[0])
    roots = [r for r in requirements
             if r.marker is None or r.marker.evaluate({**env, "extra": ""})]
    provider = _Provider(service, env, python)
    resolver: Any = Resolver(provider, BaseReporter())
    try:
        result = resolver.resolve(roots, max_rounds=10_000)
    except ResolutionImpossible as exc:
        causes = "; ".join(f"{c.requirement}" + (f" (required by {c.parent.project})"
                                                  if c.parent else "")
                           for c in list(exc.causes)[:8])
        raise LockError(f"no admitted versions satisfy: {causes}. Install them once through "
                        "the index (or approve held files) and lock again") from None
    except ResolverException as exc:
        raise LockError(f"resolution failed: {exc}") from None
    pins: dict[str, Pin] = {}
    for cand in result.mapping.values():
        if cand.project in pins:
            continue
        files = [f for f in provider.files(cand.project) if Version(f.version) == cand.version]
        pins[cand.project] = Pin(
            cand.project, str(cand.version),
            tuple(sorted({f.sha256 for f in files if f.sha256})),
            tuple(sorted(f.filename for f in files)),
            tuple(sorted(provider.parents.get(cand.project, ()))))
    return sorted(pins.values(), key=lambda p: p.project)


def render(pins: Sequence[Pin], source: str) -> str:
    lines = ["# Hash-pinned from the files the mlwarden index admitted.",
             f"# mlwarden index lock {source}",
             f"# python {sys.version_info.major}.{sys.version_info.minor}", ""]
    for p in pins:
        lines.append(f"{p.project}=={p.version} \\")
        for i, h in enumerate(p.hashes):
            lines.append(f"    --hash=sha256:{h}" + (" \\" if i < len(p.hashes) - 1 else ""))
        if p.required_by:
            lines.append(f"    # via {', '.join(p.required_by)}")
    return "\n".join(lines) + "\n"
