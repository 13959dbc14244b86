"""The index logic shared by the HTTP application and the CLI.

- ``listing``: what a project page shows: admitted files, plus upstream files that passed
  the name and release checks (pull-through candidates). Internal names never reach the
  upstream. When the upstream cannot be read, only admitted files are listed.
- ``admit``: a candidate's bytes go to quarantine, are checked against the published
  sha256, inspected, and decided (admitted, held, refused) before anyone can read them.
- ``add_internal``: uploads (twine, ``mlwarden index add``) into the internal namespace.
- ``approve`` / ``refuse`` / ``yank``: review decisions, logged in the signed approval log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from mlwarden.airlock.hooks import checkpoint
from mlwarden.index import rules as R
from mlwarden.index.inspection import inspect_file
from mlwarden.index.model import Candidate, Decision, IndexFile, Origin, State
from mlwarden.index.names import NameError_, canonical, parse_filename, version_key
from mlwarden.index.policy import Policy
from mlwarden.index.storage import IndexStorage
from mlwarden.index.upstream import (
    NotFound,
    Upstream,
    UpstreamError,
    candidates_from_json,
    candidates_to_json,
)
from mlwarden.report.model import Finding
from mlwarden.store import AuditEntry, Store
from mlwarden.store.errors import ConflictError, StoreError
from mlwarden.store.hashing import copy_and_hash
from mlwarden.store.store import Ingest
from mlwarden.util.actor import default_actor

# Refusals that no review can turn into an admission: the bytes are not what the upstream
# published, the project is known-malicious, or the name belongs to the internal namespace.
FINAL_RULES = frozenset({R.HASH_MISMATCH.id, R.KNOWN_MALICIOUS.id, R.NO_UPSTREAM_HASH.id,
                         R.DEPENDENCY_CONFUSION.id, R.BAD_DISTRIBUTION.id})
INDEX_ACTOR = "mlwarden-index"
AUDIT_PREFIX = "pkg:"


class IndexError_(Exception):
    """A request the index cannot satisfy; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Listing:
    project: str
    files: tuple[IndexFile, ...]  # admitted, served
    candidates: tuple[Candidate, ...]  # pull-through, admitted on first download
    internal: bool = False
    denied: Decision | None = None  # the name itself is refused
    upstream_error: str | None = None

    @property
    def versions(self) -> list[str]:
        vs = {f.version for f in self.files} | {c.version for c in self.candidates}
        return sorted(vs, key=version_key)

    @property
    def empty(self) -> bool:
        return not self.files and not self.candidates


AuditSink = Callable[[AuditEntry], None]


class IndexService:
    def __init__(self, store: Store, policy: Policy, *, upstream: Upstream | None = None,
                 audit: AuditSink | None = None, approval_log: bool = True) -> None:
        self.store = store
        self.policy = policy
        self.storage = IndexStorage(store)
        self.upstream = upstream or Upstream(policy.upstream_url, policy.upstream_timeout)
        self._audit = audit
        self.approval_log = approval_log
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        self.upstream.close()

    # ------------------------------------------------------------------ audit / log

    def audit(self, action: str, project: str | None, *, actor: str = INDEX_ACTOR,
              client: str = "-", method: str = "INDEX", version: str | None = None,
              filename: str | None = None, sha256: str | None = None, status: int = 0,
              nbytes: int = 0, detail: str = "") -> None:
        e = AuditEntry(time.time(), actor, client, method, action,
                       AUDIT_PREFIX + project if project else None, version, sha256,
                       filename, status, nbytes, detail)
        if self._audit is not None:
            self._audit(e)
        else:
            self.store.append_audit([e])

    def _log(self, kind: str, f: IndexFile, actor: str, note: str = "",
             decision: str | None = None) -> None:
        if not self.approval_log:
            return
        from mlwarden.approvals import ApprovalLogError, append

        details = {"index": "python", "project": f.project, "version": f.version,
                   "filename": f.filename, "sha256": f.sha256, "origin": f.origin.value,
                   "state": f.state.value, "decision": decision or f.state.value,
                   "policy_version": self.policy.digest, "note": note,
                   "findings": [x.rule for x in f.findings]}
        try:
            append(self.store, kind, f"pypi:{f.filename}", details, actor=actor)
        except (ApprovalLogError, OSError) as exc:
            # Fail closed: nothing is admitted or decided without its log entry.
            raise IndexError_(503, f"approval log not appended for {f.filename}: {exc}") \
                from exc

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------------ listing

    def listing(self, project: str, *, refresh: bool = False) -> Listing:
        project = canonical(project)
        rows = self.storage.files(project)
        served = tuple(f for f in rows if f.served)
        if self.policy.is_internal(project):
            # Never looked up upstream: whatever the public index holds under this name.
            return Listing(project, tuple(f for f in served if f.origin is Origin.INTERNAL),
                           (), internal=True)
        name = self.policy.check_project(project)
        if name.state is not State.ADMITTED:
            return Listing(project, (), (), denied=name)
        served = tuple(f for f in served if self._still_allowed(f))
        cands, error = self._upstream_candidates(project, refresh)
        if error is not None:
            return Listing(project, served, (), upstream_error=error)
        decided = {f.filename: f for f in rows}
        yanked_now = {c.filename: c.yanked for c in cands}
        out: list[Candidate] = []
        now = time.time()
        self._learn_file_facts([c for c in cands if c.filename not in decided])
        for c in cands:
            f = decided.get(c.filename)
            if f is not None:
                if f.state is State.HELD and f.sha256 is None and f.hold_until is not None \
                        and f.hold_until <= now:
                    pass  # held only for its age, which it has now reached: a candidate again
                else:
                    continue
            c = self._with_facts(c)
            d = self.policy.check_release(c, now)
            if d.state is State.ADMITTED:
                out.append(c)
            elif d.state is State.HELD and (f is None or f.hold_until != d.hold_until):
                self._record_release_hold(c, d)
        # PEP 592: a file yanked upstream after admission is served as yanked.
        served = tuple(replace(f, yanked=yanked_now[f.filename])
                       if f.origin is Origin.UPSTREAM and f.filename in yanked_now
                       and yanked_now[f.filename] is not None and f.yanked is None else f
                       for f in served)
        return Listing(project, served, tuple(out))

    def _still_allowed(self, f: IndexFile) -> bool:
        """Policy changes (a new constraint, a malicious-list update) apply to admitted
        files too; age and yanking do not take back an admission."""
        if f.origin is Origin.INTERNAL:
            return True
        c = Candidate(f.filename, f.project, f.version, f.kind, f.upstream_url or "",
                      f.sha256, f.requires_python, None, f.upload_time)
        d = replace(self.policy, minimum_age=0.0).check_release(c)
        return d.state is State.ADMITTED or (
            d.state is State.HELD and any(x.rule == R.REVIEWED.id for x in f.findings))

    def _upstream_candidates(self, project: str, refresh: bool) -> tuple[list[Candidate],
                                                                           str | None]:
        cached = self.storage.page(project)
        if cached and not refresh and time.time() - cached[0] < self.policy.page_ttl:
            return candidates_from_json(cached[2]), None
        with self._lock("page:" + project):
            cached = self.storage.page(project)
            if cached and not refresh and time.time() - cached[0] < self.policy.page_ttl:
                return candidates_from_json(cached[2]), None
            try:
                cands = self.upstream.project(project)
                status = 200
            except NotFound:
                cands, status = [], 404
            except UpstreamError as exc:
                self.audit("pkg-upstream-error", project, status=502, detail=str(exc))
                return [], f"upstream unavailable: {exc}"
            self.storage.put_page(project, status, candidates_to_json(cands))
            return cands, None

    def _learn_file_facts(self, cands: Sequence[Candidate]) -> None:
        """Files the page gives no upload time or size for (PEP 503 HTML pages): ask once
        with HEAD (Last-Modified, Content-Length) and keep the answer."""
        todo = [c for c in cands if (c.upload_time is None or c.size is None)
                and self.storage.file_facts(c.url) is None]
        if not todo:
            return

        def one(c: Candidate) -> tuple[Candidate, tuple[float | None, int | None] | None]:
            try:
                return c, self.upstream.head(c.url)
            except UpstreamError:
                return c, None

        with ThreadPoolExecutor(max_workers=8) as pool:
            for c, facts in pool.map(one, todo[:1000]):
                if facts is not None:
                    self.storage.put_file_facts(c.url, *facts)

    def _with_facts(self, c: Candidate) -> Candidate:
        if c.upload_time is not None and c.size is not None:
            return c
        facts = self.storage.file_facts(c.url)
        if facts is None:
            return c
        return replace(c, upload_time=c.upload_time if c.upload_time is not None else facts[0],
                       size=c.size if c.size is not None else facts[1])

    def _record_release_hold(self, c: Candidate, d: Decision) -> None:
        f = self._row(c, d.state, None, None, d.findings, hold_until=d.hold_until)
        try:
            self.storage.record(f, replace=True)
        except ConflictError:
            return
        self.audit("pkg-hold", c.project, version=c.version, filename=c.filename,
                   detail=d.reasons)

    @staticmethod
    def _row(c: Candidate, state: State, sha256: str | None, size: int | None,
             findings: tuple[Finding, ...], *, hold_until: float | None = None,
             metadata_sha256: str | None = None, requires_python: str | None = None,
             actor: str = INDEX_ACTOR, fetch: float = 0.0, inspect: float = 0.0) -> IndexFile:
        return IndexFile(
            filename=c.filename, project=c.project, version=c.version, kind=c.kind,
            origin=Origin.UPSTREAM, state=state, sha256=sha256, size=size,
            requires_python=c.requires_python or requires_python,
            metadata_sha256=metadata_sha256, upload_time=c.upload_time, yanked=c.yanked,
            upstream_url=c.url, upstream_sha256=c.sha256, findings=findings,
            decided_at=time.time(), decided_by=actor, hold_until=hold_until,
            fetch_seconds=fetch, inspect_seconds=inspect)

    # ------------------------------------------------------------------ files

    def file_for_download(self, project: str, filename: str) -> IndexFile:
        """The admitted file, admitting a pull-through candidate first if needed."""
        project = canonical(project)
        try:
            dist = parse_filename(filename)
        except NameError_ as exc:
            raise IndexError_(404, str(exc)) from None
        if dist.project != project:
            raise IndexError_(404, f"{filename} is not a file of {project}")
        listing = self.listing(project)
        f = self.storage.get(filename)
        if listing.denied is not None:
            raise IndexError_(403, f"{project} is refused by policy: {listing.denied.reasons}")
        for served in listing.files:
            if served.filename == filename:
                return served
        if f is not None and f.state is not State.ADMITTED and not (
                f.state is State.HELD and f.sha256 is None and f.hold_until is not None
                and f.hold_until <= time.time()):
            raise IndexError_(403, _refusal(f))
        cand = next((c for c in listing.candidates if c.filename == filename), None)
        if cand is None:
            if listing.upstream_error:
                raise IndexError_(503, f"{filename} is not admitted yet and the "
                                       f"{listing.upstream_error}")
            raise IndexError_(404, f"{filename} is not offered by this index")
        f = self.admit(cand)
        if not f.served:
            raise IndexError_(403, _refusal(f))
        return f

    def admit(self, c: Candidate, *, skip_release_checks: bool = False,
              actor: str = INDEX_ACTOR, note: str = "") -> IndexFile:
        """Quarantine, verify, inspect and decide one upstream file (once, under a lock)."""
        dist = parse_filename(c.filename)
        with self.storage.admission_lock(c.filename):
            existing = self.storage.get(c.filename)
            if existing is not None and existing.sha256 is not None:
                return existing  # decided while this request waited for the lock
            if not skip_release_checks:
                name = self.policy.check_project(c.project)
                release = self.policy.check_release(self._with_facts(c))
                for d in (name, release):
                    if d.state is not State.ADMITTED:
                        return self._decide(self._row(c, d.state, None, None, d.findings,
                                                      hold_until=d.hold_until), actor, note)
            if c.sha256 is None:
                return self._decide(self._row(c, State.REFUSED, None, None, (
                    R.NO_UPSTREAM_HASH.finding(f"{c.filename}: no sha256 on {c.url}"),)),
                    actor, note)
            with self.storage.quarantine() as q, self.storage.ingest() as ing:
                dest = q / c.filename
                started = time.monotonic()
                try:
                    dl = self.upstream.download(c.url, dest, self.policy.max_file_bytes)
                except UpstreamError as exc:
                    self.audit("pkg-upstream-error", c.project, version=c.version,
                               filename=c.filename, status=502, detail=str(exc))
                    raise IndexError_(502, f"cannot fetch {c.filename} from the upstream: "
                                           f"{exc}") from exc
                fetch = time.monotonic() - started
                checkpoint("index-download")
                if dl.sha256 != c.sha256:
                    return self._decide(self._row(c, State.REFUSED, None, dl.size, (
                        R.HASH_MISMATCH.finding(
                            f"{c.filename}: downloaded sha256 {dl.sha256} but the upstream "
                            f"publishes {c.sha256}"),), fetch=fetch), actor, note)
                if c.upload_time is None and dl.last_modified is not None and \
                        not skip_release_checks:
                    self.storage.put_file_facts(c.url, dl.last_modified, dl.size)
                    c = replace(c, upload_time=dl.last_modified)
                    d = self.policy.check_release(c)
                    if d.state is not State.ADMITTED:
                        return self._decide(self._row(c, d.state, None, None, d.findings,
                                                      hold_until=d.hold_until), actor, note)
                insp = inspect_file(dest, dist)
                checkpoint("index-inspect")
                decision = self.policy.check_inspection(insp.findings, internal=False)
                meta_sha = self._put_metadata(ing, q, dist.kind, insp.metadata)
                sha = self.storage.put_blob(ing, dest, c.filename)
                checkpoint("index-blob")
                if sha != c.sha256:  # the quarantine copy changed under us
                    raise IndexError_(500, f"{c.filename}: quarantine copy changed")
                findings = insp.findings
                if decision.state is not State.ADMITTED and any(
                        x.rule in FINAL_RULES for x in findings):
                    decision = replace(decision, state=State.REFUSED)
                f = self._row(c, decision.state, sha, dl.size, findings,
                              metadata_sha256=meta_sha, requires_python=insp.requires_python,
                              actor=actor, fetch=fetch, inspect=insp.seconds)
                return self._decide(f, actor, note)

    def _put_metadata(self, ing: Ingest, q: Path, kind: str,
                      metadata: bytes | None) -> str | None:
        if metadata is None:
            return None
        p = q / ".core-metadata"
        p.write_bytes(metadata)
        return self.storage.put_blob(ing, p, "METADATA" if kind == "wheel" else "PKG-INFO")

    def _decide(self, f: IndexFile, actor: str, note: str) -> IndexFile:
        # A promotion is logged before it takes effect: a crash in between leaves a log
        # entry for a file that is not served (admitted again later), never the reverse.
        if f.state is State.ADMITTED:
            self._log("promotion", f, actor, note)
        checkpoint("index-record")
        self.storage.record(f, replace=True)
        action = {State.ADMITTED: "pkg-admit", State.HELD: "pkg-hold",
                  State.REFUSED: "pkg-refuse"}[f.state]
        self.audit(action, f.project, actor=actor, version=f.version, filename=f.filename,
                   sha256=f.sha256, nbytes=f.size or 0,
                   detail=note or "; ".join(f"{x.rule}: {x.message}" for x in f.findings
                                            if x.severity.value != "info")[:2000])
        return f

    # ------------------------------------------------------------------ internal packages

    def add_internal(self, path: Path, *, actor: str | None = None,
                     expected_sha256: str | None = None, client: str = "cli",
                     filename: str | None = None) -> IndexFile:
        """Admit an internal distribution (upload or ``index add``). Idempotent for the same
        bytes; other bytes under an existing filename are refused (files are immutable)."""
        who = actor or default_actor()
        name = filename or path.name
        try:
            dist = parse_filename(name)
        except NameError_ as exc:
            raise IndexError_(400, str(exc)) from None
        if not self.policy.is_internal(dist.project):
            raise IndexError_(403, f"{dist.project} is not in the internal namespace "
                                   f"({', '.join(self.policy.internal.describe()) or 'empty'}): "
                                   "public projects come through the upstream, never by upload")
        with self.storage.admission_lock(name), self.storage.quarantine() as q, \
                self.storage.ingest() as ing:
            dest = q / name
            try:
                with open(path, "rb") as src, open(dest, "wb") as out:
                    digest = copy_and_hash(src, out, name)
            except OSError as exc:
                raise IndexError_(400, f"{path}: {exc.strerror or exc}") from exc
            if expected_sha256 and expected_sha256.lower() != digest.sha256:
                raise IndexError_(400, f"{name}: sha256_digest does not match the content")
            existing = self.storage.get(name)
            if existing is not None:
                if existing.sha256 == digest.sha256:
                    return existing
                raise IndexError_(409, f"{name} already exists with other content; files are "
                                       "immutable: upload a new version")
            insp = inspect_file(dest, dist)
            decision = self.policy.check_inspection(insp.findings, internal=True)
            meta_sha = self._put_metadata(ing, q, dist.kind, insp.metadata)
            sha = self.storage.put_blob(ing, dest, name)
            f = IndexFile(filename=name, project=dist.project, version=dist.version,
                          kind=dist.kind, origin=Origin.INTERNAL, state=decision.state,
                          sha256=sha, size=digest.size, requires_python=insp.requires_python,
                          metadata_sha256=meta_sha, upload_time=time.time(),
                          findings=insp.findings, decided_at=time.time(), decided_by=who,
                          inspect_seconds=insp.seconds)
            self.audit("pkg-upload", dist.project, actor=who, client=client,
                       version=dist.version, filename=name, sha256=sha, nbytes=digest.size,
                       status=200 if decision.state is State.ADMITTED else 403,
                       detail=decision.reasons)
            return self._decide(f, who, "internal upload")

    # ------------------------------------------------------------------ review

    def pending(self) -> list[IndexFile]:
        return self.storage.by_state(State.HELD)

    def select(self, spec: str, states: Sequence[State]) -> list[IndexFile]:
        """A filename, or NAME==VERSION (every file of that release), in those states."""
        if "==" in spec:
            name, _, ver = spec.partition("==")
            project = canonical(name.strip())
            want = str(version_key(ver.strip()))
            return [f for f in self.storage.files(project, states)
                    if str(version_key(f.version)) == want]
        f = self.storage.get(spec)
        return [f] if f is not None and f.state in states else []

    def approve(self, spec: str, *, actor: str | None = None, note: str = "",
                override: bool = False) -> list[IndexFile]:
        who = actor or default_actor()
        states = [State.HELD, State.REFUSED] if override else [State.HELD]
        files = self.select(spec, states)
        if not files:
            raise StoreError(f"nothing {'held or refused' if override else 'held'} matches "
                             f"{spec!r} (see `mlwarden index pending`)")
        out: list[IndexFile] = []
        for f in files:
            final = [x for x in f.findings if x.rule in FINAL_RULES]
            if final:
                raise StoreError(f"{f.filename} cannot be approved: {final[0].message}")
            if f.sha256 is None:  # held before download (age, advisory): fetch it now
                c = Candidate(f.filename, f.project, f.version, f.kind, f.upstream_url or "",
                              f.upstream_sha256, f.requires_python, f.yanked, f.upload_time,
                              f.size)
                got = self.admit(c, skip_release_checks=True, actor=who, note=note)
                if got.state is not State.ADMITTED:
                    out.append(got)
                    continue
                done = replace(got, findings=(*f.findings, *got.findings, _reviewed(who, note)))
                self.storage.record(done, replace=True)
                out.append(done)
                continue
            done = replace(f, state=State.ADMITTED, decided_at=time.time(), decided_by=who,
                           hold_until=None, findings=(*f.findings, _reviewed(who, note)))
            self._log("exception" if f.state is State.REFUSED else "approval", done, who, note,
                      "approve")
            self.storage.record(done, replace=True)
            self.audit("pkg-approve", f.project, actor=who, version=f.version,
                       filename=f.filename, sha256=f.sha256, detail=note)
            out.append(done)
        return out

    def refuse(self, spec: str, *, actor: str | None = None, note: str = "") -> list[IndexFile]:
        who = actor or default_actor()
        files = self.select(spec, [State.HELD, State.ADMITTED])
        if not files:
            raise StoreError(f"nothing held or admitted matches {spec!r}")
        out = []
        for f in files:
            done = replace(f, state=State.REFUSED, decided_at=time.time(), decided_by=who,
                           hold_until=None, findings=(*f.findings, _reviewed(who, note)))
            self.storage.record(done, replace=True)
            self.audit("pkg-refuse", f.project, actor=who, version=f.version,
                       filename=f.filename, sha256=f.sha256, detail=note or "refused by review")
            self._log("revocation", done, who, note, "refuse")
            out.append(done)
        return out

    def yank(self, spec: str, reason: str, *, actor: str | None = None,
             undo: bool = False) -> list[IndexFile]:
        who = actor or default_actor()
        files = self.select(spec, [State.ADMITTED])
        if not files:
            raise StoreError(f"nothing admitted matches {spec!r}")
        for f in files:
            self.storage.set_yanked(f.filename, None if undo else reason)
            self.audit("pkg-unyank" if undo else "pkg-yank", f.project, actor=who,
                       version=f.version, filename=f.filename, sha256=f.sha256, detail=reason)
            self._log("revocation" if not undo else "approval", f, who, reason,
                      "unyank" if undo else "yank")
        return [self.storage.get(f.filename) or f for f in files]

    def read_blob(self, sha256: str) -> bytes:
        return self.storage.read_blob(sha256)


def _reviewed(actor: str, note: str) -> Finding:
    return R.REVIEWED.finding(f"decided by {actor}" + (f": {note}" if note else ""))


def _refusal(f: IndexFile) -> str:
    what = {State.HELD: "held for review", State.REFUSED: "refused",
            State.ADMITTED: "admitted"}[f.state]
    reasons = "; ".join(f"{x.rule}: {x.message}" for x in f.findings
                        if x.severity.value != "info") or "no reason recorded"
    return f"{f.filename} is {what} by the mlwarden index ({reasons})"

