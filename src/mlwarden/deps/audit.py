"""``mlwarden deps``: parse every input, run each check, and build one Report whose entries
are the input files (plus the installed environment when asked)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mlwarden.deps import advisories as adv
from mlwarden.deps import malicious, online, typosquat
from mlwarden.deps.inputs.discover import discover
from mlwarden.deps.inputs.installed import parse_installed
from mlwarden.deps.inputs.requirements import is_local, url_is_pinned
from mlwarden.deps.model import Dep, IndexSetting, Parsed
from mlwarden.deps.rules import (
    ADVISORY_NOTE,
    EXTRA_INDEX,
    INDEX_BYPASS,
    INSECURE_INDEX,
    INTERNAL_PUBLIC,
    INTERNAL_UNBOUND,
    KNOWN_MALICIOUS,
    LOOKUP_FAILED,
    MISSING_HASH,
    RANGE_VULNERABLE,
    SOLE_MLWARDEN_INDEX,
    TYPOSQUAT,
    UNPINNED,
    UNSAFE_STRATEGY,
    URL_REQUIREMENT,
    VULNERABLE,
)
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict

PUBLIC_HOSTS = {"pypi.org", "pypi.python.org", "files.pythonhosted.org", "upload.pypi.org"}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass(frozen=True)
class AuditOptions:
    internal: tuple[str, ...] = ()
    index_url: str = online.DEFAULT_INDEX
    offline: bool = False
    online_advisories: bool = False
    osv_url: str = online.DEFAULT_OSV
    timeout: float = online.TIMEOUT
    installed: bool = False
    site_dirs: tuple[str, ...] = ()
    advisory_db: str | None = None
    mlwarden_index: tuple[str, ...] = ()  # URLs of `mlwarden index serve` instances


@dataclass
class _Run:
    options: AuditOptions
    db: adv.AdvisoryDB
    inputs: list[Parsed]
    internal: set[str] = field(default_factory=set)
    config_indexes: list[IndexSetting] = field(default_factory=list)
    mlwarden_index: set[str] = field(default_factory=set)
    sole: set[str] = field(default_factory=set)  # inputs whose only source is that index


def audit(target: Path | None, options: AuditOptions) -> Report:
    """Raises DiscoveryError / AdvisoryDBError for bad input (the CLI turns them into exit 4)."""
    started = time.monotonic()
    db = adv.load(options.advisory_db)
    inputs = discover(target) if target is not None else []
    if options.installed:
        inputs.append(parse_installed(list(options.site_dirs) or None))
    run = _Run(options, db, inputs)
    run.internal = {Dep.canonical(n) for n in options.internal}
    run.mlwarden_index = {_norm(u) for u in options.mlwarden_index}
    for p in inputs:
        run.internal.update(p.internal)
        run.mlwarden_index.update(_norm(u) for u in p.mlwarden_index)
        if p.format in ("pip-conf", "uv-toml"):
            run.config_indexes += p.indexes
    for p in inputs:
        _check_mlwarden_index(run, p)
    for p in inputs:
        _check_indexes(p)
        _check_pinning(p, inputs)
        _check_internal_binding(run, p)
        _check_names(run, p)
        _check_advisories(run, p)
    if not options.offline:
        _check_internal_public(run)
        if options.online_advisories:
            _check_osv(run)
    files = tuple(_result(p) for p in inputs)
    return Report("deps", files, time.monotonic() - started,
                  meta={"advisory_db": db.db_version, "internal": sorted(run.internal),
                        "offline": options.offline})


def _result(p: Parsed) -> FileResult:
    findings = tuple(sorted(p.findings, key=lambda f: (f.location.line or 0) if f.location
                            else 0))
    return FileResult(p.path, p.format, Verdict.worst(f.verdict for f in findings), None,
                      None, findings)


def _at(dep: Dep) -> Location:
    return Location(line=dep.line, detail=None if dep.line else f"{dep.raw_name}")


def _public(url: str, run: _Run | None = None) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if run is not None and host == (urllib.parse.urlsplit(run.options.index_url).hostname
                                    or "").lower():
        return True
    return host in PUBLIC_HOSTS


# ----------------------------------------------------------------------------- indexes

def _check_indexes(p: Parsed) -> None:
    for s in p.indexes:
        where = Location(line=s.line)
        if s.key == "extra-index-url":
            p.findings.append(EXTRA_INDEX.finding(f"extra-index-url {s.value}", where))
        elif s.key == "index-strategy" and s.value.startswith("unsafe"):
            p.findings.append(UNSAFE_STRATEGY.finding(f"index-strategy = {s.value!r}", where))
        if s.key == "trusted-host":
            p.findings.append(INSECURE_INDEX.finding(
                f"trusted-host {s.value}: certificate verification disabled", where))
        elif s.value.startswith("http://"):
            host = urllib.parse.urlsplit(s.value).hostname or ""
            if host not in _LOOPBACK:
                p.findings.append(INSECURE_INDEX.finding(f"{s.key} {s.value} uses plain http",
                                                         where))


# ----------------------------------------------------------------------------- mlwarden index

def _norm(url: str) -> str:
    """An index URL without credentials, query or trailing slash, for comparison."""
    u = urllib.parse.urlsplit(url.strip())
    host = (u.hostname or "").lower() + (f":{u.port}" if u.port else "")
    return f"{u.scheme.lower()}://{host}{u.path.rstrip('/')}"


def _sources(settings: list[IndexSetting]) -> tuple[list[str], bool]:
    """(package sources, whether the public default index was replaced)."""
    sources: list[str] = []
    replaced = False
    for s in settings:
        if s.key in ("index-url", "extra-index-url", "find-links", "index"):
            sources.append(s.value)
        if s.key == "index-url" or (s.key == "index" and s.priority in ("default", "primary")):
            replaced = True
    return sources, replaced


def _check_mlwarden_index(run: _Run, p: Parsed) -> None:
    """The safe setting is the mlwarden index as the one and only source."""
    if not run.mlwarden_index or p.format == "installed":
        return
    own = p.indexes if p.format in ("pip-conf", "uv-toml") else p.indexes + run.config_indexes
    sources, replaced = _sources(own)
    if not sources:
        return
    ours = [u for u in sources if _norm(u) in run.mlwarden_index]
    others = sorted({u for u in sources if _norm(u) not in run.mlwarden_index})
    if not ours:
        return
    if others or not replaced:
        what = ", ".join(others) if others else "the public index (the default was not replaced)"
        p.findings.append(INDEX_BYPASS.finding(f"packages can also come from {what}"))
        return
    run.sole.add(p.path)
    p.findings.append(SOLE_MLWARDEN_INDEX.finding(
        f"every package comes through the mlwarden index {ours[0]}"))


# ----------------------------------------------------------------------------- pinning

def _check_pinning(p: Parsed, inputs: list[Parsed]) -> None:
    if not p.deployment:
        return
    constraints = {d.name: d for q in inputs for d in q.deps if d.origin == "constraint"}
    for d in p.deps:
        if d.origin == "installed":
            continue
        if d.url is not None:
            if d.editable or is_local(d.url):
                continue
            if not url_is_pinned(d.url, d.hashes):
                p.findings.append(URL_REQUIREMENT.finding(
                    f"{d.raw_name}: {d.url} is not pinned to a commit or hash", _at(d)))
            continue
        pin = constraints.get(d.name)
        if d.origin == "requirement" and d.version is None and not (pin and pin.version):
            how = f"range {d.specifier!r}" if d.specifier else "no version constraint"
            p.findings.append(UNPINNED.finding(f"{d.raw_name}: {how}", _at(d)))
        if not d.hashes and not (pin and pin.hashes):
            what = "lock entry" if d.origin == "lock" else "requirement"
            p.findings.append(MISSING_HASH.finding(f"{d.raw_name}: {what} without a hash",
                                                   _at(d)))


# ----------------------------------------------------------------------------- internal

def _check_internal_binding(run: _Run, p: Parsed) -> None:
    if p.path in run.sole:
        return  # the mlwarden index never looks internal names up upstream
    declared = {s.name for s in p.indexes if s.key == "index" and s.name}
    replaced_default = any(
        (s.key == "index-url" or s.priority == "default") and not _public(s.value)
        for s in p.indexes + run.config_indexes)
    extra = [s for s in p.indexes + run.config_indexes if s.key == "extra-index-url"]
    for d in p.deps:
        if d.name not in run.internal or d.origin == "installed" or d.url is not None:
            continue
        why: str | None = None
        if d.origin == "lock":
            if d.index is None or _public(d.index, run):
                why = f"locked from the public index ({d.index or 'default'})"
        elif d.origin == "pyproject":
            if d.index is not None and d.index != "<direct>" and declared and \
                    d.index not in declared:
                why = f"bound to index {d.index!r}, which is not declared"
            elif d.index is None and not (replaced_default and not extra):
                why = "no [tool.uv.sources]/poetry source binds it to the internal index"
        elif extra:
            why = (f"resolved across {len(extra) + 1} indexes (extra-index-url): the highest "
                   "version on any of them wins")
        elif not replaced_default:
            why = "no --index-url: it resolves from the public index"
        if why:
            p.findings.append(INTERNAL_UNBOUND.finding(f"internal package {d.raw_name}: {why}",
                                                       _at(d)))


def _check_internal_public(run: _Run) -> None:
    """Look every internal name up on the public index; failures fail closed."""
    for name in sorted(run.internal):
        holder = _holder(run, name)
        where = next((_at(d) for d in holder.deps if d.name == name), Location(detail=name))
        try:
            exists = online.project_exists(name, run.options.index_url, run.options.timeout)
        except online.LookupFailed as exc:
            holder.findings.append(LOOKUP_FAILED.finding(
                f"could not check whether internal package {name} exists on "
                f"{run.options.index_url}: {exc}", where))
            continue
        if exists:
            holder.findings.append(INTERNAL_PUBLIC.finding(
                f"internal package {name} is published on {run.options.index_url}", where))


def _holder(run: _Run, name: str) -> Parsed:
    for p in run.inputs:
        if any(d.name == name for d in p.deps):
            return p
    for p in run.inputs:
        if name in p.internal:
            return p
    synthetic = Parsed("internal-packages", "config")
    run.inputs.append(synthetic)
    return synthetic


# ----------------------------------------------------------------------------- names

def _named(deps: Iterable[Dep]) -> Iterable[Dep]:
    for d in deps:
        if d.url is not None and (d.editable or is_local(d.url)) and d.name == d.raw_name \
                and ("/" in d.name or ":" in d.name):
            continue
        yield d


def _check_names(run: _Run, p: Parsed) -> None:
    for d in _named(p.deps):
        bad = malicious.lookup(d.name)
        if bad is not None:
            hit = bad.matches(d.version)
            if hit:
                what = f"release {d.version}" if bad.releases else "name"
                p.findings.append(KNOWN_MALICIOUS.finding(
                    f"{d.raw_name}: known-malicious {what}: {bad.summary}", _at(d)))
                continue
            if hit is None:
                p.findings.append(KNOWN_MALICIOUS.finding(
                    f"{d.raw_name}: unpinned, and releases {', '.join(bad.releases)} were "
                    f"malicious: {bad.summary}", _at(d)))
                continue
        if d.name in run.internal:
            continue
        squat = typosquat.check(d.raw_name)
        if squat is not None:
            p.findings.append(TYPOSQUAT.finding(squat.describe(), _at(d)))


# ----------------------------------------------------------------------------- advisories

def _check_advisories(run: _Run, p: Parsed) -> None:
    for d in p.deps:
        if d.url is not None and d.version is None:
            continue
        if d.version is not None:
            for a in run.db.matching(d.name, d.version):
                p.findings.append(_advisory_finding(d, a))
        elif d.origin in ("requirement", "pyproject"):
            hits = [a for a in run.db.admitted(d.name, d.specifier) if a.condition is None]
            if hits:
                fixes = [a.fixed for a in hits if a.fixed]
                floor = max(fixes, key=adv._v) if fixes else None
                how = f"range {d.specifier!r}" if d.specifier else "no version constraint"
                p.findings.append(RANGE_VULNERABLE.finding(
                    f"{d.raw_name}: {how} admits versions affected by {len(hits)} "
                    f"advisor{'ies' if len(hits) > 1 else 'y'} ("
                    + ", ".join(a.id for a in hits[:5]) + (", …" if len(hits) > 5 else "")
                    + ")" + (f"; require >={floor}" if floor else ""), _at(d)))


def _advisory_finding(d: Dep, a: adv.Advisory) -> Finding:
    fix = f"; fixed in {a.fixed}" if a.fixed else "; no fixed release"
    msg = f"{d.raw_name} {d.version} is affected by {a.label()}: {a.summary}{fix}"
    if a.condition is not None:
        return ADVISORY_NOTE.finding(f"{msg} (applies with a {a.condition}; see doctor)",
                                     _at(d))
    return VULNERABLE.finding(msg, _at(d))


def _check_osv(run: _Run) -> None:
    """Optional online refresh: ask OSV about every exact version; fail closed."""
    queries: list[tuple[Parsed, Dep]] = [(p, d) for p in run.inputs for d in p.deps
                                         if d.version is not None and d.url is None]
    if not queries:
        return
    try:
        answers = online.osv_querybatch([(d.name, d.version or "") for _, d in queries],
                                        run.options.osv_url, run.options.timeout)
    except online.LookupFailed as exc:
        first = queries[0][0]
        first.findings.append(LOOKUP_FAILED.finding(
            f"OSV lookup for {len(queries)} pinned versions could not run: {exc}"))
        for p in {id(p): p for p, _ in queries}.values():
            if p is not first:
                p.findings.append(LOOKUP_FAILED.finding(
                    "OSV lookup could not run (see the first input's finding)"))
        return
    for (p, d), ids in zip(queries, answers, strict=True):
        local = {a.id for a in run.db.matching(d.name, d.version or "")}
        local |= {al for a in run.db.matching(d.name, d.version or "") for al in a.aliases}
        for vid in ids:
            if vid not in local:
                p.findings.append(VULNERABLE.finding(
                    f"{d.raw_name} {d.version} is affected by {vid} (OSV)", _at(d)))
