"""Export the log as in-toto Statement v1 JSON lines. A promotion (a pull admitted into the
store) becomes SLSA Provenance v1: upstream endpoint, repository, commit and the digests of
the promoted files as subjects, with scanner and policy versions. Other entries use the
mlwarden approval predicate, which carries the signed entry itself."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from mlwarden.approvals.log import LogEntry

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
APPROVAL_PREDICATE = "https://mlwarden.dev/approval-log/v1"
PULL_BUILD_TYPE = "https://mlwarden.dev/airlock/pull/v1"


def _subjects(e: LogEntry) -> list[dict[str, Any]]:
    d = e.details
    subjects: list[dict[str, Any]] = []
    files = d.get("files")
    if isinstance(files, dict):
        subjects += [{"name": str(path), "digest": {"sha256": str(sha)}}
                     for path, sha in sorted(files.items())
                     if isinstance(sha, str) and len(sha) == 64]
    sha = d.get("sha256")
    if isinstance(sha, str) and len(sha) == 64:
        subjects.append({"name": e.subject, "digest": {"sha256": sha}})
    commit = d.get("commit")
    if commit is None and re.fullmatch(r"[^@\s]+@[0-9a-f]{40}", e.subject):
        commit = e.subject.rsplit("@", 1)[1]  # subject ORG/NAME@COMMIT names the commit
    if not subjects and isinstance(commit, str) and commit:
        repo = d.get("repo") or e.subject.split("@", 1)[0]
        subjects.append({"name": f"pkg:huggingface/{repo}@{commit}",
                         "digest": {"gitCommit": commit}})
    if not subjects:  # nothing content-addressed: the log entry itself is the subject
        subjects.append({"name": f"mlwarden-approval-log:{e.seq}",
                         "digest": {"sha256": e.hash}})
    return subjects


def _time(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def statement(e: LogEntry) -> dict[str, Any]:
    d = e.details
    if e.kind == "promotion":
        repo = d.get("repo") or e.subject.split("@", 1)[0]
        commit = d.get("commit")
        deps = [{"uri": f"pkg:huggingface/{repo}@{commit}", "digest": {"gitCommit": commit}}] \
            if isinstance(commit, str) and commit else []
        predicate: dict[str, Any] = {
            "buildDefinition": {
                "buildType": PULL_BUILD_TYPE,
                "externalParameters": {k: d[k] for k in ("endpoint", "repo", "revision")
                                       if k in d},
                "internalParameters": {k: d[k] for k in ("policy", "policy_version", "verdict")
                                       if k in d},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": "https://mlwarden.dev/airlock",
                            "version": {k: str(d[k]) for k in
                                        ("mlwarden_version", "scanner_version",
                                         "policy_version") if k in d}},
                "metadata": {"invocationId": f"approval-log:{e.seq}:{e.hash}",
                             "startedOn": _time(e.time), "finishedOn": _time(e.time)},
            },
        }
        return {"_type": STATEMENT_TYPE, "subject": _subjects(e),
                "predicateType": SLSA_PROVENANCE, "predicate": predicate}
    return {"_type": STATEMENT_TYPE, "subject": _subjects(e),
            "predicateType": APPROVAL_PREDICATE, "predicate": e.to_dict()}


def validate(stmt: dict[str, Any]) -> None:
    """in-toto-attestation's own checks (statement type, subjects with digests, predicate)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    pb = json_format.ParseDict(stmt, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()


def export_lines(entries: Iterable[LogEntry], kinds: set[str] | None = None) -> Iterator[str]:
    for e in entries:
        if kinds and e.kind not in kinds:
            continue
        stmt = statement(e)
        validate(stmt)
        yield json.dumps(stmt, sort_keys=True) + "\n"
