"""What the console pages show, computed from the store: plain data, no HTML.

Everything a model author controls (file names, commit messages, model cards, finding
messages quoting file content, Python source) leaves here as plain strings; the templates
escape them (Jinja2 autoescape) and the model card goes through ``markdown.render_card``.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mlwarden.registry.api.context import WriteContext
from mlwarden.registry.api.gate import REVIEW_RULES, StagedEntry, check_tree
from mlwarden.registry.review import ReviewState, review_state
from mlwarden.report.model import Severity, Verdict
from mlwarden.store import Commit, FileEntry, RepoInfo
from mlwarden.store.errors import RevisionNotFound, StoreError
from mlwarden.store.model import iso
from mlwarden.store.push import PR_PREFIX, pr_number

MAX_CODE_BYTES = 1 << 20
MAX_DIFF_BYTES = 64 * 1024
SEVERITIES = [s.value for s in sorted(Severity, key=lambda s: -s.rank)]


def when(ts: float | None) -> str:
    return iso(ts)[:19].replace("T", " ") + " UTC" if ts else "-"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# ------------------------------------------------------------------------ reports


def ensure_report(ctx: WriteContext, repo: str, commit: str) -> dict[str, Any]:
    """The stored scan + policy report of a commit; computed (and kept) for commits that
    entered another way (import, pull) the first time a reviewer opens them."""
    rep = ctx.push.report(repo, commit)
    if rep is not None:
        return rep
    files = ctx.store.files(repo, commit)
    with ctx.store.staging() as stage:
        for f in files:
            ctx.store.blobs.fetch_to(f.sha256, stage / f.path)  # a hard link on local blobs
        gate = check_tree(stage, [StagedEntry(f.path, f.sha256, f.size) for f in files], repo,
                          commit, commit, ctx.write.policy, ctx.cache)
    ctx.push.put_report(repo, commit, gate.report)
    return gate.report


def file_verdict(report: dict[str, Any] | None, path: str) -> str:
    if not report:
        return "-"
    return str(report.get("files", {}).get(path, {}).get("verdict", "-"))


@dataclass(frozen=True)
class FindingRow:
    severity: str
    rule: str
    verdict: str
    path: str
    member: str | None
    line: int | None
    message: str
    source: str  # scan | repository | policy


def findings_by_severity(report: dict[str, Any]) -> list[tuple[str, list[FindingRow]]]:
    from mlwarden.report.rules import RULES

    rows: list[FindingRow] = []
    for path, f in sorted(report.get("files", {}).items()):
        for x in f.get("findings", []):
            rows.append(FindingRow(x["severity"], x["rule"], x["verdict"], path, x.get("member"),
                                   x.get("line"), x["message"], "scan"))
    for x in report.get("repository", []):
        rows.append(FindingRow(x["severity"], x["rule"], x["verdict"], "(repository)", None,
                               None, x["message"], "repository"))
    for d in report.get("policy", {}).get("decisions", []):
        if d.get("action") == "allow" and d.get("rule") != "policy-remote-code-reviewed":
            continue
        known = RULES.get(d["rule"])
        review = d["rule"] in REVIEW_RULES and d["action"] == "block"
        rows.append(FindingRow(known.severity.value if known else "medium", d["rule"],
                               "review required" if review else f"policy: {d['action']}",
                               d.get("path") or "(model)", None, None, d["message"], "policy"))
    groups: dict[str, list[FindingRow]] = defaultdict(list)
    for row in rows:
        groups[row.severity].append(row)
    return [(s, groups[s]) for s in SEVERITIES if groups.get(s)]


# ------------------------------------------------------------------------ commits and refs


@dataclass(frozen=True)
class CommitRow:
    commit: Commit
    state: str
    ref: str
    pusher: str
    verdict: str
    approvals: str  # "1/2"
    title: str


def commit_row(ctx: WriteContext, st: ReviewState) -> CommitRow:
    c = st.commit
    ref = st.push.target_ref if st.push else c.branch
    return CommitRow(c, st.state, ref, st.push.pusher if st.push else c.author,
                     c.scan_verdict or "-", f"{len(st.approvers)}/{st.required}",
                     first_line(c.message))


def repo_commits(ctx: WriteContext, repo: str) -> list[CommitRow]:
    return [commit_row(ctx, review_state(ctx.push, repo, c.id, ctx.write.policy))
            for c in reversed(ctx.store.commits(repo))]


@dataclass(frozen=True)
class RefRow:
    name: str
    kind: str  # branch | tag | pull request
    commit: str
    approved: bool


def repo_refs(ctx: WriteContext, repo: str) -> list[RefRow]:
    out = []
    for r in ctx.store.refs(repo, approved_only=False):
        kind = "pull request" if r.name.startswith(PR_PREFIX) else r.kind
        out.append(RefRow(r.name, kind, r.commit, ctx.store.commit(repo, r.commit).approved))
    return out


def last_approved(ctx: WriteContext, st: ReviewState) -> Commit | None:
    """What a reviewer compares against: what the commit's branch serves now (or served
    before this commit was approved); for a pull request, its base branch."""
    repo, c = st.commit.repo, st.commit
    if c.approved:
        moves = [e for e in ctx.store.approvals(repo) if e.commit == c.id and
                 e.action == "move-branch" and e.ref == c.branch]
        if moves and moves[0].previous:
            return ctx.store.commit(repo, moves[0].previous)
        return None
    ref = st.push.target_ref if st.push else c.branch
    candidates = [ref]
    num = pr_number(ref)
    if num is not None:
        pr = ctx.push.pr(repo, num)
        if pr is not None:
            candidates.append(pr.base_ref)
    info = ctx.store.repo(repo)
    if info is not None:
        candidates.append(info.default_branch)
    for name in candidates:
        try:
            return ctx.store.resolve(repo, name)
        except RevisionNotFound:
            continue
    return None


@dataclass
class FileChange:
    path: str
    change: str  # added | removed | changed | unchanged
    size: int
    old_size: int | None
    verdict: str
    old_verdict: str | None
    diff: list[str] = field(default_factory=list)  # unified diff lines for small text files


def _read(ctx: WriteContext, sha256: str, limit: int) -> bytes | None:
    try:
        with ctx.store.open_blob(sha256, 0, limit) as fh:
            return b"".join(iter(lambda: fh.read(1 << 20), b""))
    except StoreError:
        return None


def _text(ctx: WriteContext, f: FileEntry) -> list[str] | None:
    if f.lfs or f.size > MAX_DIFF_BYTES:
        return None
    data = _read(ctx, f.sha256, MAX_DIFF_BYTES)
    try:
        return data.decode("utf-8").splitlines() if data is not None else None
    except UnicodeDecodeError:
        return None


def file_changes(ctx: WriteContext, repo: str, commit: Commit, base: Commit | None,
                 report: dict[str, Any], base_report: dict[str, Any] | None) -> list[FileChange]:
    new = {f.path: f for f in ctx.store.files(repo, commit.id)}
    old = {f.path: f for f in ctx.store.files(repo, base.id)} if base else {}
    out: list[FileChange] = []
    for path in sorted(set(new) | set(old)):
        n, o = new.get(path), old.get(path)
        if n is not None and o is None:
            ch = FileChange(path, "added", n.size, None, file_verdict(report, path), None)
        elif n is None and o is not None:
            ch = FileChange(path, "removed", 0, o.size, "-", file_verdict(base_report, path))
        elif n is not None and o is not None and n.sha256 != o.sha256:
            ch = FileChange(path, "changed", n.size, o.size, file_verdict(report, path),
                            file_verdict(base_report, path))
            a, b = _text(ctx, o), _text(ctx, n)
            if a is not None and b is not None:
                ch.diff = list(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}",
                                                    lineterm="", n=2))[:2000]
        else:
            assert n is not None
            ch = FileChange(path, "unchanged", n.size, n.size, file_verdict(report, path),
                            file_verdict(base_report, path))
        out.append(ch)
    order = {"added": 0, "changed": 1, "removed": 2, "unchanged": 3}
    out.sort(key=lambda c: (order[c.change], c.path))
    return out


# ------------------------------------------------------------------------ remote code


@dataclass(frozen=True)
class CodeLine:
    number: int
    text: str
    hits: tuple[str, ...]  # "rule: message" of findings on this line


@dataclass(frozen=True)
class CodeFile:
    path: str
    why: str
    verdict: str
    lines: tuple[CodeLine, ...]
    truncated: bool
    unplaced: tuple[str, ...]  # findings without a line number


def remote_code(ctx: WriteContext, repo: str, commit: Commit,
                report: dict[str, Any]) -> list[CodeFile]:
    """The Python ``trust_remote_code`` would import, with the lines findings point at."""
    files = {f.path: f for f in ctx.store.files(repo, commit.id)}
    out = []
    for path, why in report.get("remote_code", {}).items():
        f = files.get(path)
        if f is None:
            continue
        data = _read(ctx, f.sha256, MAX_CODE_BYTES + 1)
        if data is None:
            continue
        info = report.get("files", {}).get(path, {})
        by_line: dict[int, list[str]] = defaultdict(list)
        unplaced = []
        for x in info.get("findings", []):
            text = f"{x['rule']} ({x['verdict']}): {x['message']}"
            if x.get("line"):
                by_line[int(x["line"])].append(text)
            else:
                unplaced.append(text)
        lines = data[:MAX_CODE_BYTES].decode("utf-8", errors="replace").splitlines()
        out.append(CodeFile(path, why, str(info.get("verdict", "-")),
                            tuple(CodeLine(i, t, tuple(by_line.get(i, ())))
                                  for i, t in enumerate(lines, 1)),
                            len(data) > MAX_CODE_BYTES, tuple(unplaced)))
    return out


# ------------------------------------------------------------------------ repositories


@dataclass(frozen=True)
class RepoRow:
    info: RepoInfo
    head: str | None
    pending: int
    commits: int
    updated: float


def repo_rows(ctx: WriteContext, repos: list[RepoInfo]) -> list[RepoRow]:
    out = []
    for r in repos:
        commits = ctx.store.commits(r.id)
        try:
            head: str | None = ctx.store.resolve(r.id, r.default_branch).id
        except RevisionNotFound:
            head = None
        pending = sum(1 for c in commits if not c.approved and review_state(
            ctx.push, r.id, c.id, ctx.write.policy).state == "pending")
        out.append(RepoRow(r, head, pending, len(commits),
                           max((c.created_at for c in commits), default=r.created_at)))
    return out


def model_card(ctx: WriteContext, repo: str, commit: Commit) -> tuple[str | None, str] | None:
    from mlwarden.registry.console.markdown import render_card

    f = ctx.store.file(repo, commit.id, "README.md")
    if f is None:
        return None
    data = _read(ctx, f.sha256, 600 * 1024)
    if data is None:
        return None
    meta, html, _ = render_card(data)
    return meta, html


def verdict_class(v: str) -> str:
    if v == "review required":
        return "review"
    return v if v in {x.value for x in Verdict} else "none"
