"""``mlwarden restore``: point a deployment, or a registry tag, back to the last commit whose
signed ML-BOM and provenance both verify.

Candidates are the repository's approved commits (revoked ones are what incident response
isolates, so they never qualify), newest first, the current one excluded. Each must have a
signed BOM attached (from a deployment) that verifies against the trusted BOM signers and
lists exactly the commit's files (re-hashed from the blobs), and a provenance record that
verifies under the repository's provenance requirement. The move is an approval: logged in
the signed approval log with every candidate tried and why it was rejected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.deploy import BomSigner, DeploymentRecord, deploy, read_record
from mlwarden.deploy.checks import commit_provenance, commit_sbom
from mlwarden.incident.errors import RestoreError
from mlwarden.provenance.policy import ProvenanceRequirement
from mlwarden.signing.statement import Trust
from mlwarden.util.actor import default_actor


@dataclass(frozen=True)
class Candidate:
    commit: str
    created_at: float
    ok: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RestoreResult:
    target: str  # "deployment NAME" | "tag ORG/NAME:TAG"
    repo: str
    previous: str | None
    restored: str | None
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    dry_run: bool = False
    deployment: DeploymentRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "repo": self.repo, "previous": self.previous,
                "restored": self.restored, "dry_run": self.dry_run,
                "candidates": [{"commit": c.commit, "ok": c.ok, "reasons": list(c.reasons)}
                               for c in self.candidates]}


def find_good_commit(store: Any, repo: str, current: str | None, trust: Trust,
                     requirement: ProvenanceRequirement) -> list[Candidate]:
    """Checked candidates, newest first, up to and including the first good one."""
    out: list[Candidate] = []
    commits = sorted((c for c in store.commits(repo) if c.approved and c.id != current),
                     key=lambda c: c.created_at, reverse=True)
    for c in commits:
        sbom_ok, sbom_why = commit_sbom(store, repo, c.id, trust)
        prov_ok, prov_why = commit_provenance(store, repo, c.id, requirement)
        reasons = (f"ML-BOM: {sbom_why}", f"provenance: {prov_why}")
        out.append(Candidate(c.id, c.created_at, sbom_ok and prov_ok, reasons))
        if sbom_ok and prov_ok:
            break
    return out


def _log(store: Any, res: RestoreResult, actor: str, note: str) -> None:
    if os.environ.get("MLWARDEN_APPROVAL_LOG", "1") == "0":
        return
    from mlwarden.approvals import ApprovalLogError, append

    try:
        append(store, "approval", f"{res.repo}@{res.restored}",
               {"action": "restore", "target": res.target, "repo": res.repo,
                "commit": res.restored, "previous": res.previous, "note": note,
                "checked": res.to_dict()["candidates"]}, actor=actor)
    except (ApprovalLogError, OSError) as exc:
        raise RestoreError(f"restored, but the approval log could not be appended: {exc}") \
            from exc


def restore_tag(store: Any, repo: str, tag: str, trust: Trust,
                requirement: ProvenanceRequirement, *, actor: str | None = None,
                note: str = "", dry_run: bool = False) -> RestoreResult:
    refs = {r.name: r for r in store.refs(repo, approved_only=False)}
    ref = refs.get(tag)
    if ref is None:
        raise RestoreError(f"{repo} has no branch or tag {tag!r}")
    cands = find_good_commit(store, repo, ref.commit, trust, requirement)
    good = next((c for c in cands if c.ok), None)
    target = f"{ref.kind} {repo}:{tag}"
    res = RestoreResult(target, repo, ref.commit, good.commit if good else None,
                        tuple(cands), dry_run)
    if good is None or dry_run:
        return res
    who = actor or default_actor()
    if ref.kind == "tag":
        store.approve(repo, good.commit, actor=who, tags=[tag],
                      note=f"restore {tag} from {ref.commit[:12]}: {note}".strip())
    else:
        commit = store.commit(repo, good.commit)
        if commit.branch != tag:
            raise RestoreError(f"{good.commit[:12]} was imported for branch {commit.branch!r}, "
                               f"not {tag!r}: a branch moves only to its own commits")
        store.approve(repo, good.commit, actor=who,
                      note=f"restore {tag} from {ref.commit[:12]}: {note}".strip())
    _log(store, res, who, note)
    return res


def restore_deployment(store: Any, root: str | os.PathLike[str], trust: Trust,
                       requirement: ProvenanceRequirement, signer: BomSigner, *,
                       actor: str | None = None, note: str = "",
                       dry_run: bool = False) -> RestoreResult:
    rec = read_record(root)
    cands = find_good_commit(store, rec.repo, rec.commit, trust, requirement)
    good = next((c for c in cands if c.ok), None)
    res = RestoreResult(f"deployment {rec.name} ({Path(root).resolve()})", rec.repo,
                        rec.commit, good.commit if good else None, tuple(cands), dry_run)
    if good is None or dry_run:
        return res
    who = actor or default_actor()
    new = deploy(store, rec.repo, good.commit, root, name=rec.name, signer=signer,
                 actor=who, action="restore", environment=rec.environment,
                 note=f"restore from {rec.commit[:12]}: {note}".strip())
    res = RestoreResult(res.target, res.repo, res.previous, res.restored, res.candidates,
                        False, new)
    _log(store, res, who, note)
    return res
