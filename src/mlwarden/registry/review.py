"""Reviewing a commit: approve or refuse, under the policy's review rules.

One path for the console and ``mlwarden approve``. With ``two-person-review = true`` in the
policy (or when the commit was pushed under such a policy: the requirement is recorded
with the pushed commit, so an operator elsewhere cannot weaken it), a commit needs two
approvals from distinct people, and the owner of the token that pushed it is not one of
them. Until the last approval the commit stays pending and invisible; the last one is an
ordinary store approval (branch and tags move, logged and mirrored into the signed log).
Each vote and refusal is recorded too, in the store and in the signed approval log.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from mlwarden.policy import Policy
from mlwarden.store import Commit, Store, StoreError
from mlwarden.store.errors import RepoNotFound, RevisionNotFound
from mlwarden.store.names import is_commit_id
from mlwarden.store.push import PushRecord, PushStore, Vote

STATES = ("pending", "approved", "refused", "revoked", "superseded")


class ReviewError(StoreError):
    """A review decision the rules do not allow; the message says which rule."""


@dataclass(frozen=True)
class ReviewState:
    commit: Commit
    state: str  # one of STATES
    push: PushRecord | None
    approvals: tuple[Vote, ...]  # approve votes that count now (since the last revocation)
    refusal: Vote | None
    required: int
    forbid_self: bool
    author: str  # the identity that may not approve under two-person review

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.identity for v in self.approvals))

    @property
    def missing(self) -> int:
        return max(0, self.required - len(self.approvers))


def find_commit(store: Store, repo: str, rev: str) -> Commit:
    """A full commit id, a ref (any state), or a unique prefix of 7+ hex digits."""
    if store.repo(repo) is None:
        raise RepoNotFound(f"no repository {repo} in the store")
    if is_commit_id(rev):
        return store.commit(repo, rev)
    rows = store.db.read("SELECT commit_id FROM refs WHERE repo = ? AND name = ?", (repo, rev))
    if rows:
        return store.commit(repo, str(rows[0][0]))
    if len(rev) >= 7 and all(c in "0123456789abcdef" for c in rev):
        rows = store.db.read("SELECT id FROM commits WHERE repo = ? AND id LIKE ?",
                             (repo, rev + "%"))
        if len(rows) == 1:
            return store.commit(repo, str(rows[0][0]))
        if len(rows) > 1:
            raise RevisionNotFound(f"{rev} is ambiguous in {repo}")
    raise RevisionNotFound(f"no revision {rev} in {repo}")


def review_state(push: PushStore, repo: str, commit_id: str, policy: Policy) -> ReviewState:
    store = push.store
    c = store.commit(repo, commit_id)
    rec = push.push(repo, commit_id)
    revoked_at = max((e.at for e in store.approvals(repo)
                      if e.commit == commit_id and e.action == "revoke"), default=0.0)
    votes = [v for v in push.votes(repo, commit_id) if v.at > revoked_at]
    refusal = next((v for v in reversed(votes) if v.decision == "refuse"), None)
    approvals = tuple(v for v in votes if v.decision == "approve")
    if c.approved:
        state = "approved"
    elif refusal is not None:
        state = "refused"
    elif revoked_at:
        state = "revoked"
    elif rec is not None and rec.superseded_by:
        state = "superseded"
    else:
        state = "pending"
    two = policy.two_person_review
    required = max(rec.required_approvals if rec else 1, 2 if two else 1)
    forbid = (rec.forbid_self if rec else False) or two
    author = rec.identity if rec else c.author
    return ReviewState(c, state, rec, approvals, refusal, required, forbid, author)


def _log(store: Store, kind: str, subject: str, details: dict[str, object], actor: str) -> None:
    if os.environ.get("MLWARDEN_APPROVAL_LOG", "1") == "0":
        return
    from mlwarden.approvals import append
    from mlwarden.approvals.errors import ApprovalLogError

    try:
        append(store, kind, subject, details, actor=actor)
    except (ApprovalLogError, OSError) as exc:
        raise ReviewError(f"recorded in the store, but the approval log could not be appended "
                          f"({exc})") from exc


def approve(push: PushStore, repo: str, rev: str, *, actor: str, identity: str,
            note: str = "", tags: Sequence[str] = (), policy: Policy | None = None
            ) -> ReviewState:
    """Add ``identity``'s approval; approve the commit once enough distinct people did."""
    policy = policy or Policy()
    store = push.store
    c = find_commit(store, repo, rev)
    st = review_state(push, repo, c.id, policy)
    if st.state == "approved":
        raise ReviewError(f"{repo}@{c.id[:12]} is already approved")
    if st.state == "refused":
        assert st.refusal is not None
        raise ReviewError(f"{repo}@{c.id[:12]} was refused by {st.refusal.identity}: push a new "
                          "commit instead")
    if st.state == "superseded":
        assert st.push is not None
        raise ReviewError(f"{repo}@{c.id[:12]} is superseded by the approved commit "
                          f"{st.push.superseded_by}")
    if st.forbid_self and identity == st.author:
        raise ReviewError(f"self-approval refused: {identity} pushed {repo}@{c.id[:12]}, and "
                          "the policy requires review by someone else (two-person-review)")
    if identity in st.approvers:
        raise ReviewError(f"{identity} has already approved {repo}@{c.id[:12]}; it needs "
                          f"{st.missing} more approval(s) from other reviewers")
    count = len(st.approvers) + 1
    push.add_vote(repo, c.id, "approve", actor, identity, note, audit=count < st.required)
    subject = f"{repo}@{c.id}"
    if count < st.required:
        _log(store, "approval", subject, {"action": "review-vote", "repo": repo,
                                          "commit": c.id, "identity": identity, "note": note,
                                          "approvals": count, "required": st.required}, actor)
        return review_state(push, repo, c.id, policy)
    who = ", ".join([*st.approvers, identity])
    final_note = (note + " " if note else "") + f"(approved by {who})" if st.required > 1 \
        else note
    pending_before = push.pending_chain(repo, c.id)
    store.approve(repo, c.id, actor=actor, tags=tags, note=final_note)
    push.mark_superseded(repo, pending_before, c.id)
    return review_state(push, repo, c.id, policy)


def refuse(push: PushStore, repo: str, rev: str, *, actor: str, identity: str,
           note: str = "", policy: Policy | None = None) -> ReviewState:
    """Refuse a pending commit for good; it never becomes visible."""
    policy = policy or Policy()
    store = push.store
    c = find_commit(store, repo, rev)
    st = review_state(push, repo, c.id, policy)
    if st.state == "approved":
        raise ReviewError(f"{repo}@{c.id[:12]} is approved: revoke it instead "
                          "(mlwarden approve --revoke)")
    if st.state == "refused":
        raise ReviewError(f"{repo}@{c.id[:12]} is already refused")
    if not note.strip():
        raise ReviewError("a refusal needs a note saying why")
    push.add_vote(repo, c.id, "refuse", actor, identity, note)
    _log(store, "revocation", f"{repo}@{c.id}", {"action": "review-refuse", "repo": repo,
                                                 "commit": c.id, "identity": identity,
                                                 "note": note}, actor)
    return review_state(push, repo, c.id, policy)
