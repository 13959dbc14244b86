"""Policy evaluation: a candidate model in, a list of decisions out. Each decision cites
the rule that made it; exceptions waive decisions only while they are in date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlwarden.policy import rules as R
from mlwarden.policy.config import TIERS, Policy, PolicyException
from mlwarden.policy.typosquat import check_model_id, official_orgs
from mlwarden.report.model import Verdict
from mlwarden.report.rules import Rule

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
SAFE_WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".onnx")
WEIGHT_PICKLE_FORMATS = ("pickle", "pytorch-zip", "torchscript", "joblib", "numpy-pickle")


@dataclass(frozen=True)
class CandidateFile:
    path: str
    sha256: str
    size: int
    verdict: Verdict = Verdict.CLEAN
    format: str = ""


@dataclass(frozen=True)
class Candidate:
    """What the policy judges: one commit of one repository, already scanned."""

    repo_id: str
    commit: str
    revision: str  # as requested: a commit id, a branch or a tag
    files: tuple[CandidateFile, ...]
    remote_code: tuple[str, ...] = ()  # .py files loaders execute (auto_map and friends)
    pinned_commit: str | None = None  # what the manifest already pins, if anything
    root: Path | None = None  # where the files are on disk (provenance is checked only then)


@dataclass(frozen=True)
class Decision:
    rule: str
    action: str  # block | warn | allow
    message: str
    path: str | None = None
    exception: PolicyException | None = None

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"rule": self.rule, "action": self.action,
                                "message": self.message}
        if self.path:
            d["path"] = self.path
        if self.exception:
            d["exception"] = self.exception.to_dict()
        return d


@dataclass(frozen=True)
class PolicyResult:
    decisions: tuple[Decision, ...]
    policy_source: str

    @property
    def blocked(self) -> bool:
        return any(d.action == "block" for d in self.decisions)

    @property
    def blocking(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.action == "block")

    def for_path(self, path: str) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.path == path)


def trust_tier(org: str, policy: Policy) -> str:
    if org in official_orgs() or org in policy.official_orgs:
        return "official"
    if org in policy.established_orgs:
        return "established"
    return "new"


def _is_pickle_weight(f: CandidateFile) -> bool:
    return f.path.lower().endswith(PICKLE_SUFFIXES) or f.format in WEIGHT_PICKLE_FORMATS


def _is_safe_weight(f: CandidateFile) -> bool:
    return f.path.lower().endswith(SAFE_WEIGHT_SUFFIXES)


def evaluate(policy: Policy, c: Candidate, today: dt.date | None = None) -> PolicyResult:
    today = today or dt.date.today()
    out: list[Decision] = []

    def add(rule: Rule, action: str, message: str, path: str | None = None) -> None:
        out.append(Decision(rule.id, action, message, path))

    org = c.repo_id.split("/", 1)[0] if "/" in c.repo_id else ""
    # Organisation lists and trust tiers.
    if org in policy.blocked_orgs:
        add(R.ORG_BLOCKED, "block", f"organisation {org!r} is blocked by the policy")
    if policy.allowed_orgs and org not in policy.allowed_orgs:
        add(R.ORG_NOT_ALLOWED, "block", f"organisation {org!r} is not in allowed-orgs")
    tier = trust_tier(org, policy)
    if TIERS.index(tier) < TIERS.index(policy.min_trust):
        add(R.TRUST_TIER, "block", f"organisation {org!r} is in trust tier {tier!r}; the "
            f"policy requires at least {policy.min_trust!r}")
    # Typosquatting.
    if policy.typosquat != "off":
        squat = check_model_id(c.repo_id, policy.official_orgs)
        if squat is not None:
            add(R.TYPOSQUAT, policy.typosquat, f"possible typosquat: {squat.describe()}")
    # Pinning.
    if policy.require_pinned and c.revision != c.commit and c.pinned_commit != c.commit:
        add(R.UNPINNED, "block", f"revision {c.revision!r} is not a commit id and the "
            "manifest pins no commit for this model (require-pinned)")
    # Scan verdicts.
    verdict_rules = {Verdict.MALICIOUS: R.SCAN_MALICIOUS, Verdict.UNSCANNABLE:
                     R.SCAN_UNSCANNABLE, Verdict.SUSPICIOUS: R.SCAN_SUSPICIOUS}
    for f in c.files:
        r = verdict_rules.get(f.verdict)
        if r is None:
            continue
        action = "block" if f.verdict.rank >= policy.block_verdict.rank else "warn"
        add(r, action, f"scan verdict {f.verdict.value}", f.path)
    # Safetensors.
    if policy.require_safetensors:
        pickles = [f for f in c.files if _is_pickle_weight(f)]
        if pickles and not any(_is_safe_weight(f) for f in c.files):
            for f in pickles:
                add(R.REQUIRE_SAFETENSORS, "block", "only pickle weights; the policy "
                    "requires safetensors", f.path)
    # Remote code.
    if c.remote_code:
        review = policy.reviewed(c.repo_id, c.commit)
        listed = ", ".join(c.remote_code[:5]) + (" ..." if len(c.remote_code) > 5 else "")
        if review is None:
            add(R.REMOTE_CODE, "block", f"trust_remote_code would execute {listed}; commit "
                f"{c.commit[:12]} is not in the policy's remote-code reviews")
        else:
            add(R.REMOTE_CODE_REVIEWED, "allow", f"remote code ({listed}) reviewed by "
                f"{review.reviewer}")
    # Sizes.
    if policy.max_file_size is not None:
        for f in c.files:
            if f.size > policy.max_file_size:
                add(R.SIZE_LIMIT, "block", f"{f.size} bytes exceeds max-file-size "
                    f"{policy.max_file_size}", f.path)
    # Provenance (needs the files on disk: skipped by the check before download).
    if policy.provenance is not None and c.root is not None:
        req = policy.provenance.for_model(c.repo_id)
        if req.checks:
            from mlwarden.policy.provenance import provenance_decisions

            for rule, action, message, path in provenance_decisions(
                    req, c.repo_id, c.commit, {f.path: f.sha256 for f in c.files}, c.root):
                add(rule, action, message, path)
    total = sum(f.size for f in c.files)
    if policy.max_total_size is not None and total > policy.max_total_size:
        add(R.SIZE_LIMIT, "block", f"model totals {total} bytes, over max-total-size "
            f"{policy.max_total_size}")
    return PolicyResult(tuple(_apply_exceptions(policy, c, out, today)), policy.source)


def _apply_exceptions(policy: Policy, c: Candidate, decisions: Sequence[Decision],
                      today: dt.date) -> list[Decision]:
    sha_of = {f.path: f.sha256 for f in c.files}
    out: list[Decision] = []
    expired_seen: set[PolicyException] = set()
    for d in decisions:
        if d.action not in ("block", "warn"):
            out.append(d)
            continue
        match = None
        for e in policy.exceptions:
            if e.rule != d.rule:
                continue
            pinned = (e.sha256 is not None and d.path is not None
                      and sha_of.get(d.path) == e.sha256) or \
                     (e.commit is not None and e.model == c.repo_id and e.commit == c.commit)
            if not pinned:
                continue
            if e.expired(today):
                if e not in expired_seen:
                    expired_seen.add(e)
                    out.append(Decision(R.EXCEPTION_EXPIRED.id, "warn",
                                        f"exception expired on {e.expires.isoformat()} and "
                                        f"no longer applies: {e.describe()}", d.path, e))
                continue
            match = e
            break
        if match is None:
            out.append(d)
        else:
            out.append(replace(d, action="allow", exception=match,
                               message=f"{d.message} [waived: {match.describe()}]"))
            out.append(Decision(R.EXCEPTION_APPLIED.id, "allow", match.describe(), d.path,
                                match))
    return out
