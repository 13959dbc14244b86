"""The index policy file (TOML) and the decisions it makes.

Three layers of checks, cheapest first, so that most refusals cost no download:

1. the project name (internal namespace, allow/deny lists, known-malicious names,
   typosquats);
2. the release as the upstream lists it (version constraints, yanked, known-malicious
   releases, advisories, minimum age);
3. the bytes in quarantine (published hash, ``deps inspect`` findings).

Each finding maps to an action (admit, hold, refuse); the worst action wins.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from mlwarden.index import rules as R
from mlwarden.index.model import Candidate, Decision, IndexFile, Origin, State
from mlwarden.index.names import NameError_, Namespace, canonical, version_key
from mlwarden.report.model import Finding, Verdict

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ACTIONS = ("admit", "hold", "refuse")
# Refusals that no review can turn into an admission: the bytes are not what the upstream
# published, the project is known-malicious, or the name belongs to the internal namespace.
FINAL_RULES = frozenset({R.HASH_MISMATCH.id, R.KNOWN_MALICIOUS.id, R.NO_UPSTREAM_HASH.id,
                         R.DEPENDENCY_CONFUSION.id, R.BAD_DISTRIBUTION.id})
Check = tuple[Finding, str]  # a finding and the action the policy takes on it
_RANK = {"admit": 0, "hold": 1, "refuse": 2}
DEFAULT_UPSTREAM = "https://pypi.org/simple/"
POLICY_NAME = "index-policy.toml"


class PolicyError(ValueError):
    pass


def parse_duration(value: object, what: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w``, or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
    if not m:
        raise PolicyError(f"{what}: expected a duration such as 7d, 12h or 30m, got {value!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return float(m.group(1)) * unit


def _action(value: object, what: str) -> str:
    if value not in ACTIONS:
        raise PolicyError(f"{what}: expected one of {', '.join(ACTIONS)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class Inspection:
    """Action per verdict, overridden per rule id."""

    by_verdict: Mapping[str, str]
    by_rule: Mapping[str, str] = field(default_factory=dict)

    def action(self, f: Finding) -> str:
        keyed = f"{f.rule}@{phase(f)}"
        if keyed in self.by_rule:
            return self.by_rule[keyed]
        if f.rule in self.by_rule:
            return self.by_rule[f.rule]
        if f.verdict is Verdict.CLEAN:
            return "admit"
        return self.by_verdict.get(f.verdict.value, "hold")


def phase(f: Finding) -> str:
    """When the code behind a finding runs: ``install`` (setup.py, build backend),
    ``startup`` (.pth, every interpreter start) or ``import``."""
    member = (f.location.member if f.location else None) or ""
    if member in ("setup.py", "pyproject.toml"):
        return "install"
    if member.endswith(".pth"):
        return "startup"
    return "import"


# Network or secrets at install time or interpreter start are refused outright; at
# import time they are held for a reviewer (static analysis of import-time code has false
# positives that a person settles once).
UPSTREAM_INSPECTION = Inspection(
    {"malicious": "refuse", "unscannable": "hold", "suspicious": "hold"},
    {**{f"{r}@{p}": "refuse" for p in ("install", "startup")
        for r in ("pkg-network", "pkg-secrets",  # the analyser's rule ids, before and
                  "code-import-network", "code-network", "code-secret-read")},  # after
     "index-bad-distribution": "refuse",
     # an unknown executable .pth line runs at every interpreter start, for every program:
     # a person looks at it once even when its code reads as harmless
     "pkg-pth-exec": "hold"})
INTERNAL_INSPECTION = Inspection(
    {"malicious": "refuse", "unscannable": "admit", "suspicious": "admit"},
    {"index-bad-distribution": "refuse"})


@dataclass(frozen=True)
class Policy:
    upstream_url: str = DEFAULT_UPSTREAM
    upstream_timeout: float = 30.0
    page_ttl: float = 600.0  # how long an upstream project page is reused
    internal: Namespace = field(default_factory=Namespace)
    mode: str = "denylist"  # allowlist: only [projects] allow; denylist: all but deny
    allow: Namespace = field(default_factory=Namespace)
    deny: Namespace = field(default_factory=Namespace)
    versions: Mapping[str, SpecifierSet] = field(default_factory=dict)
    minimum_age: float = 3 * 86400.0
    yanked: str = "refuse"  # refuse | admit (served with data-yanked)
    typosquats: str = "refuse"
    advisories: str = "hold"
    inspection: Inspection = UPSTREAM_INSPECTION
    internal_inspection: Inspection = INTERNAL_INSPECTION
    max_file_bytes: int = 4 << 30
    source: str = "<defaults>"
    digest: str = "defaults"

    # ------------------------------------------------------------------ loading

    @staticmethod
    def load(path: str | Path | None) -> Policy:
        if path is None:
            return Policy()
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise PolicyError(f"cannot read policy {p}: {exc.strerror or exc}") from exc
        if len(data) > 1 << 20:
            raise PolicyError(f"{p}: policy file larger than 1 MiB")
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"{p}: invalid TOML: {exc}") from exc
        try:
            return Policy.from_dict(doc, str(p), hashlib.sha256(data).hexdigest()[:16])
        except NameError_ as exc:
            raise PolicyError(f"{p}: {exc}") from exc

    @staticmethod
    def from_dict(doc: Mapping[str, Any], source: str = "<dict>",
                  digest: str = "dict") -> Policy:
        known = {"upstream", "internal", "projects", "versions", "releases", "inspection"}
        unknown = set(doc) - known
        if unknown:
            raise PolicyError(f"{source}: unknown section(s) {', '.join(sorted(unknown))} "
                              f"(expected {', '.join(sorted(known))})")
        up = _table(doc, "upstream")
        internal = _table(doc, "internal")
        projects = _table(doc, "projects")
        releases = _table(doc, "releases")
        insp = _table(doc, "inspection")
        mode = str(projects.get("mode", "denylist"))
        if mode == "everything-but":
            mode = "denylist"
        if mode not in ("allowlist", "denylist"):
            raise PolicyError(f"[projects] mode: expected allowlist or denylist "
                              f"(everything-but), got {mode!r}")
        versions: dict[str, SpecifierSet] = {}
        for name, spec in _table(doc, "versions").items():
            try:
                versions[canonical(name)] = SpecifierSet(str(spec))
            except InvalidSpecifier as exc:
                raise PolicyError(f"[versions] {name}: {exc}") from None
        url = str(up.get("url", DEFAULT_UPSTREAM))
        if not url.startswith(("http://", "https://")):
            raise PolicyError(f"[upstream] url must be http(s), got {url!r}")
        return Policy(
            upstream_url=url.rstrip("/") + "/",
            upstream_timeout=parse_duration(up.get("timeout", 30), "[upstream] timeout"),
            page_ttl=parse_duration(up.get("cache-ttl", "10m"), "[upstream] cache-ttl"),
            internal=Namespace.parse(_strings(internal.get("names", []), "[internal] names")),
            mode=mode,
            allow=Namespace.parse(_strings(projects.get("allow", []), "[projects] allow")),
            deny=Namespace.parse(_strings(projects.get("deny", []), "[projects] deny")),
            versions=versions,
            minimum_age=parse_duration(releases.get("minimum-age", "3d"),
                                       "[releases] minimum-age"),
            yanked=_choice(releases.get("yanked", "refuse"), ("refuse", "admit"),
                           "[releases] yanked"),
            typosquats=_action(releases.get("typosquats", "refuse"), "[releases] typosquats"),
            advisories=_action(releases.get("advisories", "hold"), "[releases] advisories"),
            inspection=_inspection(insp, UPSTREAM_INSPECTION, "[inspection]"),
            internal_inspection=_inspection(_table(internal, "inspection"),
                                            INTERNAL_INSPECTION, "[internal.inspection]"),
            max_file_bytes=_positive_int(up.get("max-file-bytes", 4 << 30),
                                         "[upstream] max-file-bytes"),
            source=source, digest=digest)

    # ------------------------------------------------------------------ checks

    def is_internal(self, project: str) -> bool:
        return project in self.internal

    def check_project(self, project: str) -> Decision:
        """Name-level checks for a public project (no network, no bytes)."""
        return _decide(self._project_checks(project))

    def check_release(self, c: Candidate, now: float | None = None) -> Decision:
        """Release-level checks on what the upstream page says about one file."""
        checks = self._release_checks(c, time.time() if now is None else now)
        d = _decide(checks)
        if d.state is State.HELD and c.upload_time is not None and \
                all(f.rule == R.TOO_YOUNG.id for f, _ in checks):
            return replace(d, hold_until=c.upload_time + self.minimum_age)
        return d

    def check_admitted(self, f: IndexFile, accepted: Collection[tuple[str, str]] = ()) -> Decision:
        """What this policy says today about a file admitted earlier, under another policy
        or advisory database: the name and release checks again, except the minimum age
        and yanking, which never take back an admission. Findings in ``accepted`` (rule,
        message), which a reviewer already decided on, do not count again; final ones
        (known-malicious, an internal name) always do."""
        if f.origin is Origin.INTERNAL:
            return Decision(State.ADMITTED)
        if self.is_internal(f.project):
            return _decide([(R.DEPENDENCY_CONFUSION.finding(
                f"{f.project} is in the internal namespace: the public files admitted "
                "before are no longer served"), "refuse")])
        c = Candidate(f.filename, f.project, f.version, f.kind, f.upstream_url or "",
                      f.sha256, f.requires_python, None, f.upload_time, f.size)
        checks = self._project_checks(f.project)
        if not any(x.rule in FINAL_RULES for x, _ in checks):
            checks += self._release_checks(c, time.time(), age=False)
        return _decide([(x, a) for x, a in checks
                        if x.rule in FINAL_RULES or (x.rule, x.message) not in accepted])

    def _project_checks(self, project: str) -> list[Check]:
        from mlwarden.deps import malicious, typosquat

        bad = malicious.lookup(project)
        if bad is not None and not bad.releases:
            return [(R.KNOWN_MALICIOUS.finding(f"{project}: {bad.summary}"), "refuse")]
        checks: list[Check] = []
        if project in self.deny:
            checks.append((R.NOT_ALLOWED.finding(f"{project} is on the policy's deny list"),
                           "refuse"))
        elif self.mode == "allowlist" and project not in self.allow:
            checks.append((R.NOT_ALLOWED.finding(
                f"{project} is not on the policy's allow list (allowlist mode)"), "refuse"))
        if project not in self.allow:
            squat = typosquat.check(project)
            if squat is not None:
                checks.append((R.TYPOSQUAT.finding(squat.describe()), self.typosquats))
        return checks

    def _release_checks(self, c: Candidate, now: float, age: bool = True) -> list[Check]:
        from mlwarden.deps import advisories, malicious

        bad = malicious.lookup(c.project)
        if bad is not None and bad.matches(c.version):
            return [(R.KNOWN_MALICIOUS.finding(f"{c.project} {c.version}: {bad.summary}"),
                     "refuse")]
        checks: list[Check] = []
        spec = self.versions.get(c.project)
        if spec is not None and not spec.contains(version_key(c.version), prereleases=True):
            checks.append((R.VERSION_EXCLUDED.finding(
                f"{c.project} {c.version} is outside the policy's constraint {spec}"),
                "refuse"))
        if c.yanked is not None and self.yanked == "refuse":
            checks.append((R.YANKED.finding(
                f"{c.filename} is yanked upstream" + (f": {c.yanked}" if c.yanked else "")),
                "refuse"))
        for a in advisories.bundled().matching(c.project, c.version):
            if a.condition is None:
                fix = f"; fixed in {a.fixed}" if a.fixed else ""
                checks.append((R.ADVISORY.finding(
                    f"{c.project} {c.version} is affected by {a.label()}: {a.summary}{fix}"),
                    self.advisories))
        if age and self.minimum_age > 0:
            if c.upload_time is None:
                checks.append((R.UNKNOWN_AGE.finding(
                    f"{c.filename}: the upstream gives no upload time"), "hold"))
            elif now - c.upload_time < self.minimum_age:
                days = self.minimum_age / 86400
                checks.append((R.TOO_YOUNG.finding(
                    f"{c.filename} was uploaded {_ago(now - c.upload_time)} ago; the policy "
                    f"admits releases after {days:g} day(s)"), "hold"))
        return checks

    def check_inspection(self, findings: Iterable[Finding], internal: bool) -> Decision:
        table = self.internal_inspection if internal else self.inspection
        return _decide([(f, table.action(f)) for f in findings])


def _decide(checks: Sequence[Check]) -> Decision:
    """The worst action wins; a final finding makes the refusal final."""
    worst = max((a for _, a in checks), key=_RANK.__getitem__, default="admit")
    state = {"admit": State.ADMITTED, "hold": State.HELD, "refuse": State.REFUSED}[worst]
    return Decision(state, tuple(f for f, _ in checks),
                    final=state is State.REFUSED and any(f.rule in FINAL_RULES
                                                         for f, _ in checks))


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        raise PolicyError(f"[{key}] must be a table")
    return v


def _strings(v: object, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise PolicyError(f"{what}: expected a list of strings")
    return list(v)


def _positive_int(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise PolicyError(f"{what}: expected a positive number of bytes, got {v!r}")
    return v


def _choice(v: object, choices: tuple[str, ...], what: str) -> str:
    if v not in choices:
        raise PolicyError(f"{what}: expected one of {', '.join(choices)}, got {v!r}")
    return str(v)


def _inspection(t: Mapping[str, Any], base: Inspection, what: str) -> Inspection:
    by_verdict = dict(base.by_verdict)
    by_rule = dict(base.by_rule)
    for k, v in t.items():
        if k == "rules":
            if not isinstance(v, dict):
                raise PolicyError(f"{what} rules must be a table of rule id = action")
            for rid, act in v.items():
                by_rule[str(rid)] = _action(act, f"{what} rules.{rid}")
        elif k in ("malicious", "unscannable", "suspicious"):
            by_verdict[k] = _action(v, f"{what} {k}")
        else:
            raise PolicyError(f"{what}: unknown key {k!r}")
    return Inspection(by_verdict, by_rule)
