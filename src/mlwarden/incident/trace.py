"""``mlwarden trace QUERY``: the first question of an incident. Which models, commits, tags,
deployments and training runs contain, were built from, or depend on this?

A query is a sha256 (a blob, or a dataset/config/base-model digest), a package
(``name==version``, ``name<2.6``, or a bare name), or an advisory id (CVE, GHSA, PYSEC,
matched with the bundled OSV database). Sources searched: the store (files, refs), the
provenance records (files of store commits, attached records, ``--provenance`` paths), the
signed approval log, stored ML-BOMs (attached to commits, in deployments, ``--sbom`` files),
deployments, and fleet-scan results.

Training runs link data to models: a run that read the digest made every one of its
subjects affected, and every store commit containing a subject is affected in turn.
Provenance records are indexed without trusting their signatures (this is discovery, not
admission); each hit says whether its record was signed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.incident import rules as R
from mlwarden.incident.errors import TraceInputError
from mlwarden.incident.fleet import FleetRow, read_fleet
from mlwarden.report.model import FileResult, Finding, Report, Verdict
from mlwarden.report.rules import Rule

_HEX64 = re.compile(r"(?i)(?:sha256:)?([0-9a-f]{64})")
_ADVISORY = re.compile(r"(?i)(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|"
                       r"PYSEC-\d{4}-\d+|MAL-\d{4}-\d+|OSV-\d{4}-\d+)")
RECORD_NAMES = re.compile(r"(^|/)(provenance[^/]*\.json|[^/]*\.intoto\.jsonl?|"
                          r"[^/]*\.sigstore\.json|[^/]*\.provenance\.json)$")
MAX_RECORD = 64 << 20


# ----------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    text: str
    kind: str  # sha256 | package | advisory
    sha256: str | None = None
    package: str | None = None
    specifier: str = ""
    advisories: tuple[Any, ...] = ()  # mlwarden.deps.advisories.Advisory

    def matches_version(self, name: str, version: str | None) -> bool:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.utils import canonicalize_name
        from packaging.version import InvalidVersion, Version

        n = str(canonicalize_name(name))
        if self.kind == "advisory":
            return version is not None and any(
                a.package == n and a.affects(version) for a in self.advisories)
        if n != self.package:
            return False
        if not self.specifier:
            return True
        if version is None:
            return False
        try:
            return Version(version) in SpecifierSet(self.specifier)
        except (InvalidSpecifier, InvalidVersion):
            return False

    @property
    def packages(self) -> set[str]:
        if self.kind == "advisory":
            return {a.package for a in self.advisories}
        return {self.package} if self.package else set()


def parse_query(text: str, advisories_path: str | None = None) -> Query:
    t = text.strip()
    m = _HEX64.fullmatch(t)
    if m:
        return Query(t, "sha256", sha256=m.group(1).lower())
    if _ADVISORY.fullmatch(t):
        from mlwarden.deps.advisories import AdvisoryDBError, bundled, load

        try:
            db = load(advisories_path) if advisories_path else bundled()
        except (AdvisoryDBError, OSError, ValueError) as exc:
            raise TraceInputError(f"cannot read the advisory database: {exc}") from None
        want = t.upper()
        found = tuple(a for a in db.advisories
                      if a.id.upper() == want or want in (x.upper() for x in a.aliases))
        return Query(t, "advisory", advisories=found)
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        req = Requirement(t)
    except InvalidRequirement:
        raise TraceInputError(f"{text!r} is not a sha256, a package (name==version or a "
                              "specifier) or an advisory id (CVE-, GHSA-, PYSEC-)") from None
    return Query(t, "package", package=str(canonicalize_name(req.name)),
                 specifier=str(req.specifier))


# ----------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Hit:
    kind: str  # deployment | commit | tag | training-run | fleet | log | sbom
    id: str
    relation: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class TraceResult:
    query: Query
    hits: list[Hit] = field(default_factory=list)
    searched: dict[str, Any] = field(default_factory=dict)

    def _ids(self, kind: str) -> list[str]:
        return sorted({h.id for h in self.hits if h.kind == kind})

    @property
    def commits(self) -> list[str]:
        return self._ids("commit")

    @property
    def models(self) -> list[str]:
        return sorted({c.split("@", 1)[0] for c in self.commits} |
                      {str(h.details["repo"]) for h in self.hits
                       if h.kind in ("fleet", "deployment") and h.details.get("repo")})

    @property
    def tags(self) -> list[str]:
        return self._ids("tag")

    @property
    def deployments(self) -> list[str]:
        return self._ids("deployment")

    @property
    def runs(self) -> list[str]:
        return self._ids("training-run")

    def to_meta(self) -> dict[str, Any]:
        return {"query": {"text": self.query.text, "kind": self.query.kind,
                          "sha256": self.query.sha256, "package": self.query.package,
                          "specifier": self.query.specifier,
                          "advisories": [a.id for a in self.query.advisories]},
                "models": self.models, "commits": self.commits, "tags": self.tags,
                "deployments": self.deployments, "training_runs": self.runs,
                "hits": [{"kind": h.kind, "id": h.id, "relation": h.relation,
                          "details": dict(h.details)} for h in self.hits],
                "searched": self.searched}

    def report(self) -> Report:
        rule_of: dict[str, Rule] = {"deployment": R.DEPLOYMENT, "commit": R.COMMIT,
                                    "tag": R.TAG, "training-run": R.RUN,
                                    "fleet": R.EXTERNAL, "log": R.RECORD, "sbom": R.RECORD}
        by_id: dict[tuple[str, str], list[Finding]] = {}
        for h in self.hits:
            by_id.setdefault((h.kind, h.id), []).append(rule_of[h.kind].finding(h.relation))
        order = ("deployment", "tag", "commit", "training-run", "fleet", "sbom", "log")
        files = tuple(FileResult(i, k, Verdict.worst(f.verdict for f in fs), None, None,
                                 tuple(dict.fromkeys(fs)))
                      for (k, i), fs in sorted(by_id.items(),
                                               key=lambda x: (order.index(x[0][0]), x[0][1])))
        return Report("trace", files, meta=self.to_meta())


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RunRecord:
    """One provenance record, indexed."""

    id: str  # invocationId, else builder@startedOn, else the record's sha256
    origin: str  # where it was found: repo@commit:path, attestation, a file
    signed: bool
    builder: str | None
    subjects: Mapping[str, str]  # name -> sha256
    deps: tuple[Mapping[str, Any], ...]
    repo: str | None = None  # the commit the record sits in, if any
    commit: str | None = None


def _index_record(data: bytes, origin: str, repo: str | None = None,
                  commit: str | None = None) -> RunRecord | None:
    import hashlib

    from mlwarden.provenance.record import SLSA_PROVENANCE_V1, dependencies_of, subjects_of
    from mlwarden.signing.errors import SigningError
    from mlwarden.signing.statement import parse_envelope, payload_statement

    try:
        env = parse_envelope(data)
        stmt = payload_statement(env)
    except SigningError:
        return None
    if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
        return None
    pred = stmt.get("predicate") or {}
    run = (pred.get("runDetails") or {}) if isinstance(pred, dict) else {}
    meta = run.get("metadata") or {}
    builder = (run.get("builder") or {}).get("id")
    rid = meta.get("invocationId") or (f"{builder}@{meta.get('startedOn')}" if builder and
                                       meta.get("startedOn") else None) or \
        "sha256:" + hashlib.sha256(data).hexdigest()
    return RunRecord(str(rid), origin, env.kind != "unsigned", builder, subjects_of(stmt),
                     tuple(dependencies_of(stmt)), repo, commit)


def _iter_paths(paths: Sequence[str]) -> Iterator[Path]:
    for p in paths:
        q = Path(p)
        if q.is_dir():
            for f in sorted(q.rglob("*")):
                if f.is_file() and f.suffix in (".json", ".jsonl"):
                    yield f
        elif q.is_file():
            yield q
        else:
            raise TraceInputError(f"{p}: no such file or directory")


def _read(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_RECORD)


# ----------------------------------------------------------------------------- tracing


@dataclass(frozen=True)
class TraceSources:
    provenance: tuple[str, ...] = ()  # extra provenance files or directories
    sboms: tuple[str, ...] = ()  # extra BOM files
    fleet: tuple[str, ...] = ()  # Parquet paths or postgresql://...#table
    advisories: str | None = None


class Tracer:
    def __init__(self, store: Any | None, sources: TraceSources) -> None:
        self.store = store
        self.sources = sources
        self._weights: dict[str, bool] = {}

    # -- indexes ----------------------------------------------------------------------

    def store_files_with(self, sha: str) -> list[tuple[str, str, str]]:
        if self.store is None:
            return []
        rows = self.store.db.read("SELECT repo, commit_id, path FROM files WHERE sha256 = ? "
                                  "ORDER BY repo, commit_id, path", (sha,))
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def records(self, searched: dict[str, Any]) -> list[RunRecord]:
        out: list[RunRecord] = []
        seen: set[bytes] = set()
        n_store = n_att = n_files = 0
        if self.store is not None:
            from mlwarden.deploy.deploy import open_blob
            from mlwarden.deploy.tables import attestations

            rows = self.store.db.read("SELECT repo, commit_id, path, sha256 FROM files "
                                      "ORDER BY repo, commit_id, path")
            blobs: dict[str, bytes] = {}
            for repo, commit, path, sha in rows:
                if not RECORD_NAMES.search(str(path)):
                    continue
                if sha not in blobs:
                    try:
                        with open_blob(self.store, str(sha)) as fh:
                            blobs[sha] = fh.read(MAX_RECORD)
                    except Exception:
                        continue
                rec = _index_record(blobs[sha], f"{repo}@{commit}:{path}", str(repo),
                                    str(commit))
                if rec is not None:
                    out.append(rec)
                    n_store += 1
            for a in attestations(self.store, kind="provenance"):
                data = a.content.encode()
                if data in seen:
                    continue
                seen.add(data)
                rec = _index_record(data, f"attestation {a.id} of {a.repo}@{a.commit}",
                                    a.repo, a.commit)
                if rec is not None:
                    out.append(rec)
                    n_att += 1
        for f in _iter_paths(self.sources.provenance):
            rec = _index_record(_read(f), str(f))
            if rec is not None:
                out.append(rec)
                n_files += 1
        searched["provenance_records"] = {"in_store_commits": n_store,
                                          "attached": n_att, "files": n_files}
        return out

    def boms(self, searched: dict[str, Any]) -> list[tuple[str, dict[str, Any], str | None,
                                                           str | None]]:
        """(origin, document, repo, commit) of every BOM we know."""
        out: list[tuple[str, dict[str, Any], str | None, str | None]] = []
        if self.store is not None:
            from mlwarden.deploy.tables import attestations

            for a in attestations(self.store, kind="sbom"):
                try:
                    out.append((f"BOM attached to {a.repo}@{a.commit[:12]}",
                                json.loads(a.content), a.repo, a.commit))
                except ValueError:
                    continue
        for f in _iter_paths(self.sources.sboms):
            try:
                doc = json.loads(_read(f))
            except ValueError:
                raise TraceInputError(f"{f}: not a JSON BOM") from None
            comp = (doc.get("metadata") or {}).get("component") or {}
            name = "/".join(x for x in (comp.get("group"), comp.get("name")) if x) or None
            out.append((str(f), doc, name, comp.get("version")))
        searched["sboms"] = len(out)
        return out

    def deployments(self) -> list[Any]:
        if self.store is None:
            return []
        from mlwarden.deploy.tables import current_deployments

        return current_deployments(self.store)

    def fleet(self, searched: dict[str, Any]) -> Iterator[FleetRow]:
        n = 0
        for spec in self.sources.fleet:
            for row in read_fleet(spec):
                n += 1
                yield row
        searched["fleet_rows"] = n

    # -- the search -------------------------------------------------------------------

    def trace(self, q: Query) -> TraceResult:
        res = TraceResult(q)
        searched = res.searched
        searched["store"] = str(getattr(self.store, "root", "")) if self.store else None
        if q.kind == "advisory" and not q.advisories:
            searched["advisory"] = "not in the advisory database: only fleet results " \
                "naming it are searched"
        affected: dict[tuple[str, str], list[str]] = {}  # (repo, commit) -> why

        def commit_hit(repo: str, commit: str, why: str) -> None:
            affected.setdefault((repo, commit), []).append(why)

        records = self.records(searched)
        if q.kind == "sha256":
            assert q.sha256 is not None
            for repo, commit, path in self.store_files_with(q.sha256):
                commit_hit(repo, commit, f"contains it as {path}")
            self._trace_runs_by_digest(q.sha256, records, res, commit_hit)
            self._trace_log(q.sha256, res)
        else:
            self._trace_runs_by_package(q, records, res, commit_hit)
        self._trace_boms(q, res, commit_hit)
        for row in self.fleet(searched):
            if self._fleet_match(q, row):
                what = f"{row.path} (sha256 {row.sha256[:12]})" if q.kind == "sha256" and \
                    row.sha256 else (f"{row.package} {row.version}" if row.package
                                     else ", ".join(row.rules) or row.path or "")
                res.hits.append(Hit("fleet", f"{row.repo}@{row.commit}" if row.commit
                                    else row.repo, f"fleet scan ({row.source}): {what}",
                                    {"repo": row.repo, "commit": row.commit,
                                     "path": row.path, "verdict": row.verdict}))
        self._expand(affected, res)
        searched["hits"] = len(res.hits)
        return res

    def _fleet_match(self, q: Query, row: FleetRow) -> bool:
        if q.kind == "sha256":
            return row.sha256 == q.sha256
        if row.package and q.matches_version(row.package, row.version):
            return True
        if q.kind == "advisory":
            ids = {q.text.upper(), *(a.id.upper() for a in q.advisories),
                   *(x.upper() for a in q.advisories for x in a.aliases)}
            text = (" ".join(row.rules) + " " + row.findings).upper()
            return any(i in text for i in ids)
        return False

    def _run_hit(self, rec: RunRecord, relation: str, res: TraceResult) -> None:
        res.hits.append(Hit("training-run", rec.id, relation + ("" if rec.signed else
                                                                " (unsigned record)"),
                            {"record": rec.origin, "builder": rec.builder,
                             "signed": rec.signed,
                             "subjects": dict(rec.subjects)}))

    def _subjects_to_commits(self, rec: RunRecord, commit_hit: Any, why: str) -> None:
        """The commits holding the run's model: its record, or any of its weight files.
        Sharing only a config or a tokenizer file with the run's outputs does not make a
        commit an output of that run (those files are common to many models)."""
        if rec.repo and rec.commit:
            commit_hit(rec.repo, rec.commit, f"{why} (holds the record {rec.origin})")
        for name, sha in rec.subjects.items():
            hits = self.store_files_with(sha)
            if hits and self._is_weights(sha):
                for repo, commit, path in hits:
                    commit_hit(repo, commit, f"{why}: {path} is its output {name}")

    def _is_weights(self, sha: str) -> bool:
        """Decided by content (mlwarden's sniffer), as everywhere else."""
        cached = self._weights.get(sha)
        if cached is not None:
            return cached
        if self.store is None:
            return False
        from mlwarden.deploy.deploy import open_blob
        from mlwarden.scan import sniff as S

        try:
            with open_blob(self.store, sha) as fh:
                head = fh.read(S.HEAD_BYTES)
            size = self.store.blobs.size(sha)
            kind = S.sniff(head, size)
        except Exception:
            kind = "unknown"
        weights = kind in (S.SAFETENSORS, S.GGUF, S.HDF5, S.PICKLE, S.ZIP, S.NPY,
                           S.PROTOBUF)
        self._weights[sha] = weights
        return weights

    def _trace_runs_by_digest(self, sha: str, records: list[RunRecord], res: TraceResult,
                              commit_hit: Any) -> None:
        from mlwarden.provenance.record import kind_of

        for rec in records:
            used = [d for d in rec.deps if sha in {str(v).lower() for v in
                                                   (d.get("digest") or {}).values()} or
                    sha in {str(v).lower() for v in
                            ((d.get("annotations") or {}).get("fileDigests") or {}).values()}
                    or sha in {str(v).lower() for v in
                               ((d.get("annotations") or {}).get("files") or {}).values()
                               if isinstance(v, str)}]
            for d in used:
                what = f"{kind_of(d)} {d.get('name') or d.get('uri')}"
                self._run_hit(rec, f"used {what}", res)
                self._subjects_to_commits(rec, commit_hit, f"trained on {what} by run "
                                                           f"{rec.id}")
            produced = [n for n, s in rec.subjects.items() if s == sha]
            for n in produced:
                self._run_hit(rec, f"produced {n}", res)

    def _trace_runs_by_package(self, q: Query, records: list[RunRecord], res: TraceResult,
                               commit_hit: Any) -> None:
        for rec in records:
            for d in rec.deps:
                uri = str(d.get("uri") or "")
                if not uri.startswith("pkg:pypi/"):
                    continue
                name, _, version = uri[len("pkg:pypi/"):].partition("@")
                if q.matches_version(name, version or None):
                    used = (d.get("annotations") or {}).get("used")
                    note = " (imported by the run)" if used else \
                        " (installed; not seen imported)" if used is False else ""
                    self._run_hit(rec, f"ran with {name} {version}{note}", res)
                    self._subjects_to_commits(rec, commit_hit, f"built with {name} {version} "
                                                               f"by run {rec.id}")

    def _trace_boms(self, q: Query, res: TraceResult, commit_hit: Any) -> None:
        from mlwarden.sbom.verify import bom_files

        for origin, doc, repo, commit in self.boms(res.searched):
            reasons: list[str] = []
            if q.kind == "sha256":
                try:
                    files, _, _ = bom_files(json.dumps(doc))
                except Exception:  # not a BOM we can read: nothing to match
                    files = {}
                reasons += [f"lists {p}" for p, s in files.items() if s == q.sha256]
            else:
                for c in doc.get("components") or []:
                    purl = str(c.get("purl") or "") if isinstance(c, dict) else ""
                    if purl.startswith("pkg:pypi/") and q.matches_version(
                            str(c.get("name", "")), c.get("version")):
                        reasons.append(f"lists library {c.get('name')} {c.get('version')}")
            if not reasons:
                continue
            res.hits.append(Hit("sbom", origin, "; ".join(reasons[:5]),
                                {"repo": repo, "commit": commit}))
            if repo and commit and self.store is not None and \
                    re.fullmatch(r"[0-9a-f]{40}", str(commit)):
                commit_hit(repo, str(commit), f"its ML-BOM {'; '.join(reasons[:3])}")

    def _trace_log(self, sha: str, res: TraceResult) -> None:
        if self.store is None:
            return
        from mlwarden.approvals import ApprovalLogError, read_log

        try:
            entries = read_log(self.store)
        except ApprovalLogError as exc:
            res.searched["approval_log"] = f"unreadable: {exc}"
            return
        res.searched["approval_log"] = len(entries)
        for e in entries:
            files = e.details.get("files")
            hits = [p for p, s in files.items() if s == sha] if isinstance(files, dict) else []
            if e.details.get("sha256") == sha:
                hits.append("(exception pinned to it)")
            if hits:
                res.hits.append(Hit("log", f"approval-log#{e.seq}",
                                    f"{e.kind} of {e.subject} by {e.actor}: "
                                    f"{', '.join(map(str, hits[:3]))}",
                                    {"seq": e.seq, "kind": e.kind, "subject": e.subject}))

    def _expand(self, affected: Mapping[tuple[str, str], list[str]], res: TraceResult) -> None:
        """Commits -> their refs and the deployments serving them."""
        if not affected:
            return
        for (repo, commit), whys in sorted(affected.items()):
            approved = None
            if self.store is not None:
                try:
                    approved = self.store.commit(repo, commit).approved
                except Exception:
                    approved = None
            state = "" if approved is None else (" [served]" if approved else
                                                 " [not served: unapproved or revoked]")
            for why in dict.fromkeys(whys):
                res.hits.append(Hit("commit", f"{repo}@{commit}", why + state,
                                    {"repo": repo, "commit": commit, "approved": approved}))
        if self.store is None:
            return
        repos = {r for r, _ in affected}
        for repo in sorted(repos):
            for ref in self.store.refs(repo, approved_only=False):
                if (repo, ref.commit) in affected:
                    res.hits.append(Hit("tag", f"{repo}:{ref.name}", f"{ref.kind} {ref.name} "
                                        f"points at affected commit {ref.commit[:12]}",
                                        {"repo": repo, "commit": ref.commit,
                                         "kind": ref.kind}))
        for d in self.deployments():
            if (d.repo, d.commit) in affected:
                res.hits.append(Hit("deployment", d.name, f"serves {d.repo}@{d.commit[:12]} "
                                    f"from {d.path} (since {d.action} by {d.actor})",
                                    {"repo": d.repo, "commit": d.commit, "path": d.path}))


def trace(query: str, store: Any | None, sources: TraceSources = TraceSources()) -> \
        TraceResult:
    return Tracer(store, sources).trace(parse_query(query, sources.advisories))


__all__ = ["Hit", "Query", "TraceResult", "TraceSources", "Tracer", "parse_query", "trace"]
