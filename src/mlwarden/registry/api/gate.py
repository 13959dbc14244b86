"""The airlock for a pushed commit: scan the staged tree, apply the policy, decide.

The same engine and policy as ``pull`` and ``import``: files are scanned through the scan
cache (unchanged files of the parent cost nothing), repository checks see the whole tree,
and every decision cites a rule. A push ends in one of two ways:

* **refused** at commit time: a blocking decision (malicious or unscannable content under
  the default ``block-verdict``, pickle-only weights, size limits, organisation rules);
  nothing is stored and the client gets an error naming the rules;
* **pending**: the commit is created unapproved. Remote code is never a refusal here: the
  review console is where a person reads the code that ``trust_remote_code`` would run,
  so ``policy-remote-code`` becomes a review item instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.policy import Candidate, CandidateFile, Decision, Policy, evaluate
from mlwarden.report.model import FileResult, Finding, Report, Verdict
from mlwarden.scancache.cache import ScanCache, rules_version, scanner_version
from mlwarden.scancache.scan import scan_tree

REVIEW_RULES = frozenset({"policy-remote-code"})


@dataclass(frozen=True)
class StagedEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class GateResult:
    report: dict[str, Any]  # what the console shows; stored with the commit
    verdict: Verdict
    refusing: tuple[Decision, ...]
    review_items: tuple[Decision, ...]

    @property
    def refused(self) -> bool:
        return bool(self.refusing)

    def refusal_message(self) -> str:
        files = self.report.get("files", {})
        lines = []
        for d in self.refusing:
            where = f"{d.path}: " if d.path else ""
            rules = ""
            if d.path and d.rule.startswith("policy-scan-"):
                found = sorted({f["rule"] for f in files.get(d.path, {}).get("findings", [])
                                if f["verdict"] != "clean"})
                if found:
                    rules = f" [{', '.join(found[:5])}]"
            lines.append(f"{where}{d.rule}{rules}: {d.message}")
        return "commit refused by the mlwarden airlock: " + "; ".join(lines)

    @property
    def rules(self) -> tuple[str, ...]:
        out: list[str] = []
        files = self.report.get("files", {})
        for d in self.refusing:
            out.append(d.rule)
            if d.path:
                out += [f["rule"] for f in files.get(d.path, {}).get("findings", [])
                        if f["verdict"] != "clean"]
        return tuple(dict.fromkeys(out))


def finding_dict(f: Finding, member: str | None = None) -> dict[str, Any]:
    loc = f.location
    return {"rule": f.rule, "severity": f.severity.value, "verdict": f.verdict.value,
            "message": f.message, "member": member or (loc.member if loc else None),
            "line": loc.line if loc else None, "location": str(loc) if loc else None}


def report_dict(report: Report, display_root: str, remote_code: dict[str, str],
                decisions: Sequence[Decision], policy_source: str) -> dict[str, Any]:
    """The scan and policy outcome keyed by repository path (archive members folded into
    their file), in the JSON form the review console reads."""
    prefix = display_root + "/"
    files: dict[str, dict[str, Any]] = {}
    repo_findings: list[dict[str, Any]] = []
    for r in report.files:
        top, _, member = r.path.partition("!")
        if r.path == display_root or not top.startswith(prefix):
            repo_findings += [finding_dict(f) for f in r.findings]
            continue
        rel = top[len(prefix):]
        entry = files.setdefault(rel, {"verdict": Verdict.CLEAN.value, "format": "",
                                       "findings": [], "members": 0})
        if not member:
            entry["format"] = r.format
        else:
            entry["members"] += 1
        entry["verdict"] = Verdict.worst([Verdict(entry["verdict"]), r.verdict]).value
        entry["findings"] += [finding_dict(f, member or None) for f in r.findings]
    return {"verdict": report.verdict.value, "files": files, "repository": repo_findings,
            "remote_code": remote_code,
            "policy": {"source": policy_source, "decisions": [d.to_dict() for d in decisions]},
            "scanner": {"version": scanner_version(), "rules": rules_version()},
            "summary": report.summary()}


def check_tree(stage: Path, entries: Sequence[StagedEntry], repo: str, commit: str,
               revision: str, policy: Policy, cache: ScanCache | None) -> GateResult:
    """Scan ``stage`` (the full tree of the commit) and apply ``policy`` to it."""
    from mlwarden.scan.repository import remote_code_files

    display_root = f"{repo}@{commit[:12]}"
    scanned = scan_tree(stage, [(e.path, e.sha256) for e in entries], display_root, cache)
    code = remote_code_files(stage, display_root, list(scanned.report.files))
    verdicts = _verdicts(scanned.report.files, display_root)
    candidate = Candidate(
        repo, commit, commit,
        tuple(CandidateFile(e.path, e.sha256, e.size, *verdicts.get(e.path, (Verdict.CLEAN, "")))
              for e in entries),
        tuple(code))
    result = evaluate(policy, candidate)
    report = report_dict(scanned.report, display_root, code, result.decisions,
                         result.policy_source)
    refusing = tuple(d for d in result.blocking if d.rule not in REVIEW_RULES)
    review = tuple(d for d in result.blocking if d.rule in REVIEW_RULES)
    return GateResult(report, scanned.report.verdict, refusing, review)


def _verdicts(results: Sequence[FileResult], display_root: str) -> dict[str, tuple[Verdict, str]]:
    out: dict[str, tuple[Verdict, str]] = {}
    prefix = display_root + "/"
    for r in results:
        top = r.path.split("!", 1)[0]
        if not top.startswith(prefix):
            continue
        rel = top[len(prefix):]
        v, fmt = out.get(rel, (Verdict.CLEAN, ""))
        out[rel] = (Verdict.worst([v, r.verdict]), fmt or (r.format if r.path == top else ""))
    return out
