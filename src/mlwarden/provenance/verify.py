"""Verify a model against its provenance, the way slsa-verifier verifies an artifact:

1. the signature, against the trusted keys / CA / Sigstore identities (nothing else in the
   record is read before this passes);
2. the statement is SLSA Provenance v1 (schema-valid);
3. the builder is one of the accepted builders;
4. the source repository (and ref, and commit, when asked) is the expected one, and the
   tree was clean;
5. every file of the model is a subject with the same sha256 (files the record does not
   describe are refused; subjects the model lacks, such as checkpoints, are noted);
6. optionally, every dataset the run used has a digest in the allowed set.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.provenance import rules as R
from mlwarden.provenance.errors import ProvenanceInputError
from mlwarden.provenance.record import (
    LEVEL_URI,
    SLSA_PROVENANCE_V1,
    dependencies_of,
    kind_of,
    subjects_of,
    validate_statement,
)
from mlwarden.report.model import FileResult, Finding, Location, Report, Verdict
from mlwarden.report.rules import Rule
from mlwarden.signing.statement import StatementVerification, Trust, verify_statement

DEFAULT_NAME = "provenance.json"
MAX_RECORD_BYTES = 64 << 20
# Never outputs of training: signatures, VCS metadata. (The record itself is left out too.)
ALWAYS_IGNORED = ("model.sig", ".git", ".gitattributes", ".gitignore", ".github",
                  ".cache/huggingface")
_HEX = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class VerifyOptions:
    trust: Trust
    builders: tuple[str, ...]
    source: str | None = None  # github.com/org/repo, https://..., git+https://...
    source_ref: str | None = None  # refs/heads/main, refs/tags/v1
    source_commit: str | None = None  # full or >= 7 hex prefix
    datasets: frozenset[str] | None = None  # allowed digests (sha256 hex or gitCommit)
    allow_dirty: bool = False
    subject_prefix: str | None = None
    ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProvenanceVerification:
    ok: bool
    report: Report
    signer: StatementVerification | None = None
    statement: dict[str, Any] | None = None
    builder: str | None = None
    source: str | None = None
    source_commit: str | None = None
    datasets: tuple[str, ...] = ()
    level_claimed: int | None = None
    level_verified: int | None = None
    subject_prefix: str = ""
    absent_subjects: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "signer": self.signer.to_dict() if self.signer else None,
                "builder": self.builder, "source": self.source,
                "source_commit": self.source_commit, "datasets": list(self.datasets),
                "slsa_level": {"claimed": self.level_claimed,
                               "verified": self.level_verified},
                "subject_prefix": self.subject_prefix,
                "absent_subjects": list(self.absent_subjects), "errors": list(self.errors)}


# ----------------------------------------------------------------------------- helpers


def normalize_source(uri: str) -> tuple[str, str | None]:
    """(host/path lower-cased host, ref): ``git+https://GitHub.com/o/r.git@refs/heads/x``
    -> (``github.com/o/r``, ``refs/heads/x``)."""
    u = uri.strip().removeprefix("git+")
    ref = None
    head, sep, tail = u.rpartition("@")
    if sep and "/" not in tail.split("refs/", 1)[0] and (tail.startswith("refs/") or
                                                          _HEX.fullmatch(tail)):
        u, ref = head, tail
    u = re.sub(r"^[a-z][a-z0-9+.-]*://", "", u)
    u = re.sub(r"^[^/@]*@", "", u)  # credentials
    u = u.rstrip("/").removesuffix(".git")
    host, _, path = u.partition("/")
    return f"{host.lower()}/{path}" if path else host.lower(), ref


def builder_accepted(builder: str, accepted: Iterable[str]) -> bool:
    for a in accepted:
        if builder == a:
            return True
        if "@" not in a and builder.split("@", 1)[0] == a:
            return True
    return False


def digest_allowed(digest: Mapping[str, Any], allowed: frozenset[str]) -> bool:
    for alg, value in digest.items():
        if not isinstance(value, str):
            continue
        v = value.lower()
        if v in allowed or f"{alg.lower()}:{v}" in allowed:
            return True
    return False


def model_files(model: Path, skip: Sequence[str] = ()) -> dict[str, Path]:
    """Repository path -> file, for a model directory (or a single file)."""
    if model.is_file():
        return {model.name: model}
    if not model.is_dir():
        raise ProvenanceInputError(f"{model}: no such file or directory")
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(model):
        rel_dir = os.path.relpath(dirpath, model)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = sorted(d for d in dirnames if not _ignored(rel_dir + d, skip))
        for n in sorted(filenames):
            rel = rel_dir + n
            if not _ignored(rel, skip):
                out[rel] = Path(dirpath) / n
    return out


def _ignored(rel: str, skip: Sequence[str]) -> bool:
    return any(rel == s or rel.startswith(s.rstrip("/") + "/") for s in (*ALWAYS_IGNORED,
                                                                         *skip))


def choose_prefix(files: Iterable[str], subjects: Mapping[str, str],
                  forced: str | None = None) -> str:
    """The directory prefix under which the subjects name the model's files: the one
    matching the most files by name (``out/final/`` for a model saved to out/final)."""
    if forced is not None:
        return forced.rstrip("/") + "/" if forced.strip("/") else ""
    counts: dict[str, int] = {}
    names = list(subjects)
    for f in files:
        for n in names:
            if n == f:
                counts[""] = counts.get("", 0) + 1
            elif n.endswith("/" + f):
                p = n[: len(n) - len(f)]
                counts[p] = counts.get(p, 0) + 1
    if not counts:
        return ""
    best = max(counts.values())
    return min((p for p, c in counts.items() if c == best), key=len)


# ----------------------------------------------------------------------------- verifying


def read_record(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise ProvenanceInputError(f"{path}: no such provenance file") from None
    except OSError as exc:
        raise ProvenanceInputError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_RECORD_BYTES:
        raise ProvenanceInputError(f"{path}: larger than {MAX_RECORD_BYTES} bytes")
    return data


def check_statement(stmt: Mapping[str, Any], opts: VerifyOptions) -> list[tuple[Rule, str]]:
    """Builder, source and dataset checks on a statement whose signature has been verified."""
    problems: list[tuple[Rule, str]] = []
    pred = stmt.get("predicate") or {}
    builder = ((pred.get("runDetails") or {}).get("builder") or {}).get("id")
    if not isinstance(builder, str) or not builder_accepted(builder, opts.builders):
        problems.append((R.BUILDER, f"built by {builder!r}, not by an accepted builder "
                                    f"({', '.join(opts.builders)})"))
    deps = dependencies_of(stmt)
    src = next((d for d in deps if kind_of(d) == "source"), None)
    src_uri = src.get("uri") if src else \
        ((pred.get("buildDefinition") or {}).get("externalParameters") or {}).get("source")
    commit = ((src or {}).get("digest") or {}).get("gitCommit")
    if opts.source is not None:
        if not isinstance(src_uri, str):
            problems.append((R.SOURCE, "the record names no source repository"))
        else:
            got, ref = normalize_source(src_uri)
            want, want_ref = normalize_source(opts.source)
            if got != want:
                problems.append((R.SOURCE, f"built from {got}, expected {want}"))
            expected_ref = opts.source_ref or want_ref
            if expected_ref and not _HEX.fullmatch(expected_ref) and ref != expected_ref:
                problems.append((R.SOURCE, f"built from ref {ref or '(none)'}, expected "
                                 f"{expected_ref}"))
    if opts.source_commit:
        want_c = opts.source_commit.lower()
        if not isinstance(commit, str) or not commit.lower().startswith(want_c):
            problems.append((R.SOURCE, f"built from commit {commit or '(none)'}, expected "
                             f"{want_c}"))
    ann = (src or {}).get("annotations") or {}
    if ann.get("dirty") and not opts.allow_dirty:
        outside = ann.get("codeOutsideCommit") or []
        modified = ann.get("modified") or []
        problems.append((R.DIRTY, "the training tree was dirty (modified: "
                         f"{', '.join(modified[:5]) or '-'}; code outside the commit: "
                         f"{', '.join(outside[:5]) or '-'})"))
    if opts.datasets is not None:
        for d in deps:
            if kind_of(d) != "dataset":
                continue
            digest = d.get("digest") or {}
            if not digest_allowed(digest, opts.datasets):
                problems.append((R.DATASET, f"dataset {d.get('name') or d.get('uri')} "
                                 f"(sha256 {digest.get('sha256', '?')}) is not in the "
                                 "allowed set"))
    return problems


def verify_files(files: Mapping[str, str], data: bytes, opts: VerifyOptions, *,
                 record_name: str = DEFAULT_NAME, display_root: str = "") -> \
        ProvenanceVerification:
    """Core check over ``files`` (repository path -> sha256) already hashed by the caller
    (the guard's manifest pins, the airlock's quarantine digests, a hashed directory)."""
    if not opts.builders:
        raise ProvenanceInputError("at least one accepted builder is required (--builder)")
    record_findings: list[Finding] = []
    per_file: dict[str, list[Finding]] = {p: [] for p in files}

    def result(ok: bool, **kw: Any) -> ProvenanceVerification:
        fr = [FileResult(record_name, "slsa-provenance",
                         Verdict.worst(f.verdict for f in record_findings), None, None,
                         tuple(record_findings))]
        for p, fs in sorted(per_file.items()):
            fr.append(FileResult(f"{display_root}{p}", "model-file",
                                 Verdict.worst(f.verdict for f in fs), None, files[p],
                                 tuple(fs)))
        return ProvenanceVerification(ok, Report("verify-provenance", tuple(fr)), **kw)

    signer = verify_statement(data, opts.trust)
    if not signer.ok or signer.statement is None:
        rule = R.UNSIGNED if signer.method == "unsigned" else R.SIGNATURE
        tried = "; ".join(signer.tried)
        record_findings.append(rule.finding((signer.error or "not verified")
                                            + (f" ({tried})" if tried else "")))
        return result(False, signer=signer, errors=(signer.error or "",))
    stmt = signer.statement
    if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
        record_findings.append(R.MALFORMED.finding(
            f"predicate type {stmt.get('predicateType')!r} is not {SLSA_PROVENANCE_V1}"))
        return result(False, signer=signer, statement=stmt)
    try:
        validate_statement(stmt)
    except ValueError as exc:
        record_findings.append(R.MALFORMED.finding(str(exc)))
        return result(False, signer=signer, statement=stmt)
    for rule, msg in check_statement(stmt, opts):
        record_findings.append(rule.finding(msg))
    subjects = subjects_of(stmt)
    prefix = choose_prefix(files, subjects, opts.subject_prefix)
    for rel, sha in files.items():
        want = subjects.get(prefix + rel)
        if want is None:
            per_file[rel].append(R.NOT_A_SUBJECT.finding(
                f"{rel} is not an output of the attested run (no subject {prefix + rel})"))
        elif want != sha.lower():
            per_file[rel].append(R.SUBJECT_MISMATCH.finding(
                f"sha256 {sha} differs from the attested {want}",
                Location(detail=f"subject {prefix + rel}")))
    absent = tuple(sorted(n for n in subjects if n.startswith(prefix) and
                          n[len(prefix):] not in files))
    deps = dependencies_of(stmt)
    datasets = tuple(str(d.get("name") or d.get("uri")) for d in deps
                     if kind_of(d) == "dataset")
    src = next((d for d in deps if kind_of(d) == "source"), {})
    pred = stmt.get("predicate") or {}
    builder = ((pred.get("runDetails") or {}).get("builder") or {}).get("id")
    claimed = _claimed_level(stmt)
    hosted = ((pred.get("buildDefinition") or {}).get("internalParameters") or {}).get(
        "hostedBuilder") is True
    verified = None if claimed is None else \
        min(claimed, 2 if signer.method == "sigstore" and hosted else 1)
    ok = not record_findings and not any(per_file.values())
    if ok:
        who = ", ".join(signer.identities) or signer.method
        record_findings.append(R.VERIFIED.finding(
            f"signed ({who}); builder {builder}; source {src.get('uri')} "
            f"@ {(src.get('digest') or {}).get('gitCommit', '?')[:12]}; {len(files)} "
            f"file(s) match their subjects; SLSA Build L{verified} verified "
            f"(L{claimed} claimed)"))
    return result(ok, signer=signer, statement=stmt, builder=builder,
                  source=src.get("uri"), source_commit=(src.get("digest") or {}).get(
                      "gitCommit"), datasets=datasets, level_claimed=claimed,
                  level_verified=verified, subject_prefix=prefix, absent_subjects=absent)


def _claimed_level(stmt: Mapping[str, Any]) -> int | None:
    by = ((stmt.get("predicate") or {}).get("runDetails") or {}).get("byproducts") or []
    for b in by:
        if isinstance(b, dict) and b.get("uri") == LEVEL_URI:
            lvl = (b.get("annotations") or {}).get("level")
            return lvl if isinstance(lvl, int) else None
    return None


def hash_files(files: Mapping[str, Path]) -> dict[str, str]:
    from mlwarden.provenance.classify import Hasher

    h = Hasher()
    h.hash_all(str(p) for p in files.values())
    out = {}
    for rel, p in files.items():
        got = h.done.get(str(p))
        if got is None:
            raise ProvenanceInputError(f"{p}: cannot read")
        out[rel] = got[0]
    return out


def verify_provenance(model: str | os.PathLike[str], provenance: str | os.PathLike[str] | None,
                      opts: VerifyOptions) -> ProvenanceVerification:
    """Verify a model directory (or file) against a provenance record (default:
    ``provenance.json`` inside the model)."""
    m = Path(model)
    rec = Path(provenance) if provenance is not None else m / DEFAULT_NAME
    data = read_record(rec)
    # The model's own record (provenance.json) is never an output of training, whichever
    # record is being verified.
    skip = [*opts.ignore, DEFAULT_NAME]
    if m.is_dir():
        with contextlib.suppress(ValueError):
            skip.append(rec.resolve().relative_to(m.resolve()).as_posix())
    files = hash_files(model_files(m, skip))
    if not files:
        raise ProvenanceInputError(f"{m}: no files to verify")
    root = f"{m}/" if m.is_dir() else ""
    return verify_files(files, data, opts, record_name=str(rec), display_root=root)
