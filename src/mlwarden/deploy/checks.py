"""Does a store commit still carry a verifiable approval? Its signed ML-BOM (attached when it
was deployed) must verify and list exactly the commit's files, and its provenance record
(a file of the commit) must verify under the repository's provenance requirement. Used by
``deploy --policy`` and by ``restore`` to find the last known-good commit."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from mlwarden.deploy.deploy import open_blob
from mlwarden.deploy.tables import attestations
from mlwarden.provenance.policy import ProvenanceRequirement
from mlwarden.signing.statement import Trust

_CHUNK = 4 << 20


def blob_digests(store: Any, repo: str, commit: str) -> tuple[dict[str, str], list[str]]:
    """path -> sha256 of every file of the commit, re-hashed from the blobs (the table alone
    could lie), and the problems found."""
    out: dict[str, str] = {}
    problems: list[str] = []
    for e in store.files(repo, commit):
        h = hashlib.sha256()
        try:
            with open_blob(store, e.sha256) as fh:
                while block := fh.read(_CHUNK):
                    h.update(block)
        except Exception as exc:
            problems.append(f"{e.path}: blob unreadable ({exc})")
            continue
        if h.hexdigest() != e.sha256:
            problems.append(f"{e.path}: blob content does not match its sha256")
        out[e.path] = h.hexdigest()
    return out, problems


def commit_sbom(store: Any, repo: str, commit: str, trust: Trust) -> tuple[bool, str]:
    """(ok, why): some attached BOM of the commit has a signature trusted by ``trust`` and
    lists exactly the commit's files."""
    from mlwarden.sbom.sign import verify_bom_signature
    from mlwarden.sbom.verify import bom_files

    boms = attestations(store, repo, commit, "sbom")
    sigs = attestations(store, repo, commit, "sbom-signature")
    if not boms or not sigs:
        return False, "no signed ML-BOM is attached to this commit (deploy it once)"
    files, problems = blob_digests(store, repo, commit)
    if problems:
        return False, "; ".join(problems[:3])
    reasons = []
    with tempfile.TemporaryDirectory(prefix="mlwarden-bomcheck-") as tmp:
        for b in reversed(boms):
            bom = Path(tmp) / f"{b.id}.cdx.json"
            bom.write_text(b.content)
            for s in reversed(sigs):
                sig = Path(tmp) / f"{b.id}-{s.id}.sig"
                sig.write_text(s.content)
                res = verify_bom_signature(bom, sig, trust)
                if not res.ok:
                    reasons.append(res.error or "signature does not verify")
                    continue
                listed, _, _ = bom_files(b.content)
                if dict(listed) != files:
                    diff = sorted(set(listed) ^ set(files)) or sorted(
                        p for p in files if listed.get(p) != files[p])
                    reasons.append(f"the signed BOM does not match the commit's files "
                                   f"({', '.join(diff[:3])})")
                    continue
                return True, f"signed BOM verified ({', '.join(res.identities) or res.method})"
    return False, "; ".join(dict.fromkeys(reasons)) or "no BOM signature verifies"


def commit_provenance(store: Any, repo: str, commit: str,
                      req: ProvenanceRequirement) -> tuple[bool, str]:
    """(ok, why) under ``req``: the record is a file of the commit (or an absolute path)."""
    from mlwarden.provenance.errors import ProvenanceError
    from mlwarden.provenance.verify import ALWAYS_IGNORED, read_record, verify_files

    if not req.checks:
        return True, "no provenance required"
    files, problems = blob_digests(store, repo, commit)
    if problems:
        return False, "; ".join(problems[:3])
    rec = req.record_for(repo, commit)
    if not os.path.isabs(rec):
        entry = next((e for e in store.files(repo, commit) if e.path == rec), None)
        if entry is None:
            return (not req.require, f"no provenance record {rec} in the commit")
        with open_blob(store, entry.sha256) as fh:
            data = fh.read(64 << 20)
    else:
        try:
            data = read_record(Path(rec))
        except ProvenanceError as exc:
            return (not req.require, str(exc))
    subject_files = {p: s for p, s in files.items() if p != rec and not any(
        p == i or p.startswith(i + "/") for i in ALWAYS_IGNORED)}
    try:
        res = verify_files(subject_files, data, req.options(), record_name=rec)
    except ProvenanceError as exc:
        return False, str(exc)
    if res.ok:
        return True, f"provenance verified (builder {res.builder}, source {res.source})"
    msgs = [f.message for r in res.report.files for f in r.findings
            if f.rule != "provenance-verified"]
    return False, "; ".join(msgs[:3])
