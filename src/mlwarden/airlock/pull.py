"""``pull``: upstream -> quarantine -> verify -> scan -> policy -> store + manifest.

Order of effects, chosen so that killing the process at any point leaves the served store
and the manifest as they were, or fully updated:

1. resolve the revision, list files, and scan the repository *remotely* (range reads of
   the bytes the scanner needs; files whose LFS sha256 the verdict cache knows cost
   nothing); evaluate the policy: a block ends here, and nothing was downloaded;
2. download into a quarantine inside the store's tmp area, verifying every file against
   the Hub metadata (nothing is visible yet); every byte range the pre-scan read must
   equal the verified download at that offset, so the verdict is the verdict of the
   verified bytes (else the pull is rejected: the upstream served two versions); files
   the pre-scan could not read are scanned locally; the policy is evaluated again;
3. move the blobs in (content-addressed: unreferenced until a commit names them) and
   record the commit *unapproved* (invisible to ``serve``);
4. append the applied policy exceptions and the promotion (with its provenance) to the
   store's signed approval log: written ahead, so nothing becomes visible unlogged; if the
   append fails, pull stops with a clean error and the state is that of step 3;
5. write the manifest atomically: the commit point;
6. approve the commit, which moves its branch/tag so ``serve`` shows it. A crash between
   5 and 6 leaves a pinned but unapproved commit, which ``verify`` reports and the next
   pull completes (and logs its own promotion).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.airlock import rules as R
from mlwarden.airlock.download import Cancelled, Downloaded, fetch
from mlwarden.airlock.hooks import checkpoint
from mlwarden.airlock.quarantine import quarantine
from mlwarden.airlock.upstream import RemoteFile, Resolved, Upstream, UpstreamRejected
from mlwarden.manifest import Manifest, ManifestFile, ModelEntry
from mlwarden.manifest import update as update_manifest
from mlwarden.policy import (
    Candidate,
    CandidateFile,
    Policy,
    PolicyException,
    PolicyResult,
    evaluate,
)
from mlwarden.report.model import FileResult, Report, Verdict
from mlwarden.scancache import (
    VERIFIED,
    ScanCache,
    git_key,
    rules_version,
    scan_tree,
    scanner_version,
)
from mlwarden.store import Commit, ConflictError, FileEntry, Store, StoreError
from mlwarden.store.hashing import FileDigest
from mlwarden.util.actor import default_actor

if TYPE_CHECKING:
    from mlwarden.scan.sources.scanning import TreeScan

MAX_CONFIG_BYTES = 16 << 20
DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class PullOptions:
    repo_id: str
    revision: str | None = None
    endpoint: str | None = None
    token: str | None = None
    manifest: Path = Path("model-manifest.yaml")
    workers: int = 8
    actor: str | None = None


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    sha256: str
    lfs: bool
    verdict: Verdict
    cached: bool
    decisions: tuple[str, ...] = ()  # "action rule" for this file


@dataclass(frozen=True)
class PullResult:
    resolved: Resolved
    rows: tuple[FileRow, ...]
    policy: PolicyResult
    report: Report
    commit: Commit | None  # None when blocked
    remote_code: tuple[str, ...] = ()
    manifest: Path | None = None
    cached_files: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def blocked(self) -> bool:
        return self.commit is None


def _remote_code(read: Callable[[str, int], bytes | None],
                 files: list[RemoteFile]) -> tuple[str, ...]:
    """Python files a loader would import, plus configs that ask for custom classes."""
    out = [f.path for f in files if f.path.endswith(".py")]
    for f in files:
        name = f.path.rsplit("/", 1)[-1]
        if name in ("config.json", "tokenizer_config.json", "preprocessor_config.json",
                    "processor_config.json") and f.size <= MAX_CONFIG_BYTES:
            data = read(f.path, MAX_CONFIG_BYTES)
            try:
                doc = json.loads(data) if data is not None else None
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("auto_map") and not out:
                out.append(f"{f.path}:auto_map")
    return tuple(out)


def _download_all(up: Upstream, resolved: Resolved, files: list[RemoteFile], dest: Path,
                  workers: int, bar_class: type | None,
                  on_done: Callable[[Downloaded], None] | None) -> list[Downloaded]:
    stop = threading.Event()
    results: list[Downloaded] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pull") as pool:
        futures: list[Future[Downloaded]] = [
            pool.submit(fetch, up, resolved.repo_id, resolved.commit, rf, dest / rf.path, stop,
                        bar_class) for rf in files]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None
                  and not isinstance(f.exception(), Cancelled)]
        if failed:
            stop.set()
            for f in pending:
                f.cancel()
            wait(pending)
            exc = failed[0].exception()
            assert exc is not None
            raise exc
        for f in futures:
            d = f.result()
            results.append(d)
            if on_done is not None:
                on_done(d)
    return results


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pull(opts: PullOptions, store: Store, policy: Policy, cache: ScanCache | None,
         bar_class: type | None = None,
         on_file: Callable[[Downloaded], None] | None = None) -> PullResult:
    up = Upstream(opts.endpoint, opts.token)
    resolved = up.resolve(opts.repo_id, opts.revision)
    checkpoint("resolve")
    remote = up.list_files(opts.repo_id, resolved.commit)
    checkpoint("list")
    from mlwarden.manifest import load as load_manifest

    pinned = load_manifest(opts.manifest).get(opts.repo_id)
    pinned_commit = pinned.commit if pinned is not None else None

    def candidate(files: tuple[CandidateFile, ...], code: tuple[str, ...]) -> Candidate:
        return Candidate(opts.repo_id, resolved.commit, resolved.revision, files, code,
                         pinned_commit)

    # Model-level rules (org, typosquat, pinning, names, sizes) before any byte is fetched.
    early = evaluate(policy, candidate(
        tuple(CandidateFile(f.path, f.sha256 or "", f.size) for f in remote),
        tuple(f.path for f in remote if f.path.endswith(".py"))))
    known = {f.path for f in remote if f.sha256}  # exceptions can match these already
    model_level = tuple(d for d in early.blocking if d.rule != "policy-remote-code"
                        and (d.path is None or d.path in known))
    if model_level:
        rows = tuple(FileRow(f.path, f.size, f.sha256 or "", f.lfs, Verdict.CLEAN, False,
                             tuple(f"{d.action} {d.rule}" for d in early.for_path(f.path)))
                     for f in remote)
        return PullResult(resolved, rows, early, Report("pull", ()), None,
                          notes=("blocked before download",))
    display_root = f"{opts.repo_id}@{resolved.commit[:12]}"
    pre = _prescan(up, resolved, remote, display_root, cache)
    checkpoint("prescan")
    pre_verdicts = _file_verdicts(Report("pull", pre.results), display_root)
    code = _remote_code(pre.tree.read, remote)
    unread = _unread(pre)

    def verdict_of(path: str, verdicts: dict[str, tuple[Verdict, str]]) -> tuple[Verdict, str]:
        return verdicts.get(path, (Verdict.CLEAN, ""))

    first = evaluate(policy, candidate(
        tuple(CandidateFile(f.path, f.sha256 or "", f.size,
                            *((Verdict.CLEAN, "") if f.path in unread
                              else verdict_of(f.path, pre_verdicts)))
              for f in remote), code))
    if first.blocked:
        rows = tuple(FileRow(f.path, f.size, f.sha256 or "", f.lfs,
                             verdict_of(f.path, pre_verdicts)[0], f.path in pre.cached,
                             tuple(f"{x.action} {x.rule}" for x in first.for_path(f.path)))
                     for f in remote)
        return PullResult(resolved, rows, first, _pre_report(pre), None, code,
                          cached_files=len(pre.cached),
                          notes=("blocked by the remote pre-scan; nothing was downloaded",))
    with quarantine(store.tmp) as qdir:
        downloaded = _download_all(up, resolved, remote, qdir, opts.workers, bar_class, on_file)
        checkpoint("download")
        if unread:  # the pre-scan could not read some bytes: scan the download itself
            scanned = scan_tree(qdir, [(d.remote.path, d.sha256) for d in downloaded],
                                display_root, cache)
            report, cached = scanned.report, scanned.cached
        else:
            report = _confirm(pre, downloaded, cache)
            cached = pre.cached
        checkpoint("scan")
        verdicts = _file_verdicts(report, display_root)
        result = evaluate(policy, candidate(
            tuple(CandidateFile(d.remote.path, d.sha256, d.size,
                                *verdict_of(d.remote.path, verdicts))
                  for d in downloaded), code))
        checkpoint("policy")
        rows = tuple(FileRow(d.remote.path, d.size, d.sha256, d.remote.lfs,
                             verdict_of(d.remote.path, verdicts)[0], d.remote.path in cached,
                             tuple(f"{x.action} {x.rule}" for x in result.for_path(d.remote.path)))
                     for d in downloaded)
        if result.blocked:
            return PullResult(resolved, rows, result, report, None, code,
                              cached_files=len(cached))
        commit = _promote(store, opts, resolved, downloaded, report, result, code, policy)
    return PullResult(resolved, rows, result, report, commit, code, opts.manifest, len(cached))


def _prescan(up: Upstream, resolved: Resolved, remote: list[RemoteFile], display_root: str,
             cache: ScanCache | None) -> TreeScan:
    """Scan the upstream repository through range reads, before any download. Only
    verified cache entries are trusted: the upstream's metadata is what is being checked."""
    from huggingface_hub import HfApi

    from mlwarden.scan.engine import ScanOptions
    from mlwarden.scan.sources import RemoteFile as SourceFile
    from mlwarden.scan.sources.hf import make_tree
    from mlwarden.scan.sources.scanning import scan_tree as scan_remote

    files = [SourceFile(f.path, f.size, f.sha256, "lfs-metadata" if f.sha256 else None,
                        f.git_oid) for f in remote]
    auth = HfApi(endpoint=up.endpoint, token=up.token)._build_hf_headers()
    tree = make_tree(f"{resolved.repo_id}@{resolved.revision}", "model", resolved.repo_id,
                     resolved.commit, files, up.endpoint, auth, display_root,
                     resolved.revision)
    return scan_remote(tree, ScanOptions(hash="never"), cache=cache, trust=(VERIFIED,),
                       record=False)


def _unread(pre: TreeScan) -> frozenset[str]:
    """Files whose pre-scan met read errors (network): their verdict waits for the download."""
    bad: set[str] = set()
    prefix = pre.tree.display_root + "/"
    for r in pre.results:
        if any(f.rule in ("read-error", "internal-error") for f in r.findings) \
                and r.path.startswith(prefix):
            bad.add(r.path[len(prefix):].split("!", 1)[0])
    return frozenset(bad)


def _pre_report(pre: TreeScan) -> Report:
    return Report("pull", pre.results, pre.seconds,
                  {"prescan": {"bytes_read": pre.bytes_read, "requests": pre.requests,
                               "total_bytes": pre.tree.total_size}})


def _confirm(pre: TreeScan, downloaded: list[Downloaded], cache: ScanCache | None) -> Report:
    """The pre-scan's results become the verdict on the downloaded files once every range
    it read is shown to equal the verified download; those results are then cached as
    verified. A mismatch means the upstream served other bytes to range requests than to
    the download: rejected."""
    logs = pre.tree.read_logs()
    by_path = {d.remote.path: d for d in downloaded}
    for rel, log in logs.items():
        d = by_path.get(rel)
        if d is not None and log.ranges and not log.matches(d.local):
            raise UpstreamRejected(R.HASH_MISMATCH, f"{rel}: bytes read by the remote "
                                   "pre-scan differ from the verified download at the same "
                                   "offsets (the upstream serves two versions)", rel)
    prefix = pre.tree.display_root + "/"
    results: list[FileResult] = []
    groups: dict[str, list[FileResult]] = {}
    for r in pre.results:
        top = r.path.split("!", 1)[0]
        d = by_path.get(top[len(prefix):]) if top.startswith(prefix) else None
        if d is not None and r.path == top:
            r = replace(r, sha256=d.sha256, sha256_source=None)
        if d is not None:
            groups.setdefault(d.remote.path, []).append(r)
        results.append(r)
    if cache is not None:
        for rel, group in groups.items():
            if rel not in pre.cached:
                d = by_path[rel]
                own = _without_repo_findings(group)
                cache.put(d.sha256, rel, f"{prefix}{rel}", own)
                if not d.remote.lfs:  # verified against the tree's git blob sha1 too
                    cache.put(git_key(d.remote.git_oid), rel, f"{prefix}{rel}", own)
    return Report("pull", tuple(results), pre.seconds,
                  {"prescan": {"bytes_read": pre.bytes_read, "requests": pre.requests,
                               "total_bytes": pre.tree.total_size}})


def _without_repo_findings(group: list[FileResult]) -> list[FileResult]:
    """Cache entries hold what the file's own bytes say; repository checks are re-run."""
    own = group[0]
    kept = tuple(f for f in own.findings if not f.rule.startswith("repo-"))
    if len(kept) == len(own.findings):
        return group
    verdict = Verdict.worst([*(f.verdict for f in kept), *(m.verdict for m in group[1:])])
    return [replace(own, findings=kept, verdict=verdict), *group[1:]]


def _file_verdicts(report: Report, display_root: str) -> dict[str, tuple[Verdict, str]]:
    """Repository path -> (worst verdict of the file and its members, format)."""
    out: dict[str, tuple[Verdict, str]] = {}
    prefix = display_root + "/"
    for r in report.files:
        top = r.path.split("!", 1)[0]
        if not top.startswith(prefix):
            continue
        rel = top[len(prefix):]
        v, fmt = out.get(rel, (Verdict.CLEAN, r.format if r.path == top else ""))
        out[rel] = (Verdict.worst([v, r.verdict]), fmt or (r.format if r.path == top else ""))
    return out


def _promote(store: Store, opts: PullOptions, resolved: Resolved, downloaded: list[Downloaded],
             report: Report, result: PolicyResult, code: tuple[str, ...],
             policy: Policy) -> Commit:
    actor = opts.actor or default_actor()
    branch = resolved.ref if resolved.ref_kind == "branch" and resolved.ref else "main"
    tags = (resolved.ref,) if resolved.ref_kind == "tag" and resolved.ref else ()
    message = f"mlwarden pull {resolved.repo_id}@{resolved.revision} from " \
              f"{opts.endpoint or DEFAULT_ENDPOINT}"
    # One promotion per repository at a time, on every host sharing the store.
    with store.lock(f"promote:{resolved.repo_id}"), store.ingest() as session:
        entries: list[FileEntry] = []
        for d in downloaded:
            digest = FileDigest(d.sha256, d.size, d.remote.lfs, d.git_oid)
            got = session.put_file(d.local, d.remote.path, move=True, known=digest)
            entries.append(FileEntry(d.remote.path, got.sha256, got.size, d.remote.lfs,
                                     d.git_oid))
        checkpoint("ingest")
        try:
            commit = store.commit_files(
                entries, resolved.repo_id, branch=branch, message=message, author=actor,
                tags=tags, approve=False, commit_id=resolved.commit,
                scan_verdict=report.verdict.value,
                scan_summary={"policy": result.policy_source, **report.summary()},
                session=session)
        except ConflictError as exc:
            raise UpstreamRejected(R.COMMIT_MISMATCH, f"commit {resolved.commit} is already "
                                   f"in the store with other content: {exc}") from None
        checkpoint("commit")
        _log_promotion(store, opts, resolved, downloaded, report, result, policy, actor)
        checkpoint("log")  # not in STAGES: logged, but nothing visible yet (as "commit")
        verdicts = {r.path: r.verdict for r in report.files}
        display_root = f"{resolved.repo_id}@{resolved.commit[:12]}"
        now = _now()
        review = policy.reviewed(resolved.repo_id, resolved.commit)
        exceptions = tuple(d.exception.to_dict() for d in result.decisions
                           if d.exception is not None and d.rule == "policy-exception-applied")

        def change(m: Manifest) -> Manifest:
            old = m.get(resolved.repo_id)
            approvals = tuple(a for a in (old.approvals if old else ())
                              if a.get("commit") == resolved.commit)
            approvals += ({"action": "pull", "by": actor, "at": now, "commit": resolved.commit,
                           "policy": result.policy_source},)
            entry = ModelEntry(
                commit=resolved.commit, ref=resolved.ref, ref_kind=resolved.ref_kind,
                source=opts.endpoint or DEFAULT_ENDPOINT, pulled_at=now,
                files={d.remote.path: ManifestFile(
                    d.sha256, d.size,
                    verdicts.get(f"{display_root}/{d.remote.path}", Verdict.CLEAN).value)
                    for d in downloaded},
                scan={"verdict": report.verdict.value,
                      "scanner": f"mlwarden {scanner_version()}", "rules": rules_version()},
                approvals=approvals, exceptions=exceptions,
                remote_code={"files": list(code), "commit": resolved.commit,
                             "reviewer": review.reviewer, "note": review.note}
                if code and review is not None else None,
                conversions=old.conversions if old and old.commit == resolved.commit else (),
                policy={"source": result.policy_source,
                        "decisions": [d.to_dict() for d in result.decisions
                                      if d.action != "block"]})
            return m.with_model(resolved.repo_id, entry)

        update_manifest(opts.manifest, change)
        checkpoint("manifest")
        commit = store.approve(resolved.repo_id, commit.id, actor=actor, tags=tags,
                               note=f"mlwarden pull: policy passed ({result.policy_source})")
        checkpoint("approve")
    return commit


def applied_exceptions(result: PolicyResult) -> list[tuple[PolicyException, tuple[str, ...]]]:
    """Each exception that waived a decision of this pull, once, with the paths it waived."""
    seen: dict[PolicyException, list[str]] = {}
    for d in result.decisions:
        if d.rule == "policy-exception-applied" and d.exception is not None:
            paths = seen.setdefault(d.exception, [])
            if d.path and d.path not in paths:
                paths.append(d.path)
    return [(e, tuple(p)) for e, p in seen.items()]


def exception_entry(repo: str, commit: str, exc: PolicyException,
                    paths: tuple[str, ...]) -> tuple[str, dict[str, object]]:
    """(subject, details) of an ``exception`` log entry: what was waived, pinned how, by
    whom, until when. Subject: the pinned sha256, or ORG/NAME@COMMIT for a commit pin."""
    details: dict[str, object] = {
        "rule": exc.rule, "justification": exc.justification, "approver": exc.approver,
        "expires": exc.expires.isoformat(), "repo": repo, "commit": commit,
        "paths": list(paths)}
    if exc.sha256:
        details["sha256"] = exc.sha256
        return exc.sha256, details
    return f"{exc.model}@{exc.commit}", details


def promotion_details(opts: PullOptions, resolved: Resolved, downloaded: list[Downloaded],
                      report: Report, result: PolicyResult, policy: Policy,
                      actor: str) -> dict[str, object]:
    """The provenance of one pull, in the fields the in-toto (SLSA) export reads: upstream
    endpoint, repository, requested revision and what it resolved to, file digests, scan
    verdict, scanner/rules, policy source and version, and who ran it."""
    import mlwarden

    files = sorted(downloaded, key=lambda d: d.remote.path)
    return {
        "repo": resolved.repo_id, "commit": resolved.commit, "revision": resolved.revision,
        "ref": resolved.ref, "ref_kind": resolved.ref_kind,
        "endpoint": opts.endpoint or DEFAULT_ENDPOINT,
        "files": {d.remote.path: d.sha256 for d in files},
        "sizes": {d.remote.path: d.size for d in files},
        "verdict": report.verdict.value,
        "scanner_version": f"{scanner_version()}+rules.{rules_version()}",
        "rules_version": rules_version(),
        "mlwarden_version": mlwarden.__version__,
        "policy": result.policy_source, "policy_version": policy.fingerprint(),
        "warnings": sorted({d.rule for d in result.decisions if d.action == "warn"}),
        "exceptions": [e.to_dict() for e, _ in applied_exceptions(result)],
        "actor": actor,
    }


def _log_promotion(store: Store, opts: PullOptions, resolved: Resolved,
                   downloaded: list[Downloaded], report: Report, result: PolicyResult,
                   policy: Policy, actor: str) -> None:
    """Exceptions first (what made the promotion possible), then the promotion. A failure is
    a StoreError (one clean line): the commit stays unapproved and the manifest untouched."""
    if os.environ.get("MLWARDEN_APPROVAL_LOG", "1") == "0":  # the store's own switch
        return
    from mlwarden.approvals import ApprovalLogError, append

    try:
        for exc, paths in applied_exceptions(result):
            subject, details = exception_entry(resolved.repo_id, resolved.commit, exc, paths)
            append(store, "exception", subject, details, actor=actor)
        append(store, "promotion", f"{resolved.repo_id}@{resolved.commit}",
               promotion_details(opts, resolved, downloaded, report, result, policy, actor),
               actor=actor)
    except (ApprovalLogError, OSError) as exc:
        raise StoreError(f"cannot append the promotion to the approval log: {exc}; nothing "
                         f"was promoted ({resolved.repo_id}@{resolved.commit[:12]} is stored "
                         "unapproved, the manifest is unchanged)") from None


__all__ = ["FileResult", "PullOptions", "PullResult", "applied_exceptions", "exception_entry",
           "promotion_details", "pull"]
