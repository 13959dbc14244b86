"""``[policy.provenance]`` in the airlock: a model whose requirement applies is admitted only
with a signed provenance record from an accepted builder and source whose subjects are
exactly its files (the downloaded, already-hashed quarantine files)."""

from __future__ import annotations

import os
from pathlib import Path

from mlwarden.policy import rules as R
from mlwarden.provenance.errors import ProvenanceError
from mlwarden.provenance.policy import ProvenanceRequirement
from mlwarden.provenance.verify import ALWAYS_IGNORED, read_record, verify_files
from mlwarden.report.rules import Rule

Outcome = tuple[Rule, str, str, str | None]  # rule, action, message, path


def provenance_decisions(req: ProvenanceRequirement, repo: str, commit: str,
                         files: dict[str, str], root: Path) -> list[Outcome]:
    """Decisions for one candidate whose files (path -> sha256) lie under ``root``."""
    rec = req.record_for(repo, commit)
    inside = not os.path.isabs(rec)
    if inside and rec not in files:
        if not req.require:
            return []
        return [(R.PROVENANCE_MISSING, "block", f"no provenance record ({rec}) in "
                 f"{repo}@{commit[:12]}; the policy requires one", None)]
    path = root / rec if inside else Path(rec)
    if not inside and not path.is_file():
        if not req.require:
            return []
        return [(R.PROVENANCE_MISSING, "block", f"no provenance record at {path}; the policy "
                 "requires one", None)]
    try:
        data = read_record(path)
        subject_files = {p: s for p, s in files.items() if p != rec and not any(
            p == i or p.startswith(i + "/") for i in ALWAYS_IGNORED)}
        res = verify_files(subject_files, data, req.options(), record_name=rec)
    except ProvenanceError as exc:
        return [(R.PROVENANCE, "block", str(exc), rec if inside else None)]
    if res.ok:
        return [(R.PROVENANCE_VERIFIED, "allow", f"provenance verified: builder "
                 f"{res.builder}, source {res.source} @ {(res.source_commit or '?')[:12]}, "
                 f"SLSA Build L{res.level_verified}", rec if inside else None)]
    out: list[Outcome] = []
    for fr in res.report.files:
        for f in fr.findings:
            if f.rule == "provenance-verified":
                continue
            path_of = None if fr.format == "slsa-provenance" else fr.path
            out.append((R.PROVENANCE, "block", f"{f.rule}: {f.message}", path_of))
    return out
