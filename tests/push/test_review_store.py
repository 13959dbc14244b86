"""The write side of the store (pushed commits, votes, pull requests, refs, sessions) and
the review rules, on SQLite and PostgreSQL, without a server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlwarden.policy import Policy, policy_from_mapping
from mlwarden.registry import review
from mlwarden.store import Store
from mlwarden.store.errors import ConflictError, InvalidName, RevisionNotFound
from mlwarden.store.push import PushRecord, PushStore, pr_number
from mlwarden.store.tokens import Scope


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    s = Store.open(tmp_path / "store", url)
    yield s
    s.close()


def _commit(store: Store, repo: str, text: str, author: str = "dev", branch: str = "main"):  # type: ignore[no-untyped-def]
    d = store.root.parent / f"src-{time.monotonic_ns()}"
    d.mkdir()
    (d / "a.txt").write_text(text)
    return store.commit_directory(d, repo, author=author, message=text, branch=branch)


def test_scopes() -> None:
    assert Scope.parse("acme:write").allows("acme/x", "read")
    assert not Scope.parse("acme:read").allows("acme/x", "write")
    assert not Scope.parse("acme:write").allows("acme/x", "approve")
    assert Scope.parse("acme/x:approve").allows("acme/x", "read")
    assert Scope.parse("*:admin").allows("any/thing", "approve")
    for bad in ("acme:admin", "acme:owner", "a/b/c:write"):
        with pytest.raises(InvalidName):
            Scope.parse(bad)


def test_push_head_chains_pending_pushes(store: Store) -> None:
    push = PushStore.open(store)
    base = _commit(store, "acme/m", "v1")
    store.approve("acme/m", base.id, actor="ops")
    assert push.push_head("acme/m", "main") == base.id
    first = _commit(store, "acme/m", "v2")
    push.record_push(PushRecord("acme/m", first.id, "main", base.id, None, "token:a/1", "alice",
                                "1", 1, False, None, time.time()), {"verdict": "clean"})
    assert push.push_head("acme/m", "main") == first.id
    second = _commit(store, "acme/m", "v3")
    push.record_push(PushRecord("acme/m", second.id, "main", first.id, None, "token:a/1",
                                "alice", "1", 1, False, None, time.time()), {})
    assert push.push_head("acme/m", "main") == second.id
    assert push.pending_chain("acme/m", second.id) == [first.id]
    st = review.approve(push, "acme/m", second.id, actor="bob", identity="bob")
    assert st.state == "approved"
    assert push.push("acme/m", first.id).superseded_by == second.id  # type: ignore[union-attr]
    assert review.review_state(push, "acme/m", first.id, Policy()).state == "superseded"
    assert push.push_head("acme/m", "main") == second.id
    assert push.push_head("acme/m", "nope") is None
    assert push.report("acme/m", first.id) == {"verdict": "clean"}


def test_refusal_is_final_and_needs_a_reason(store: Store) -> None:
    push = PushStore.open(store)
    c = _commit(store, "acme/r", "x")
    with pytest.raises(review.ReviewError, match="needs a note"):
        review.refuse(push, "acme/r", c.id, actor="bob", identity="bob")
    st = review.refuse(push, "acme/r", c.id, actor="bob", identity="bob", note="no license")
    assert st.state == "refused" and st.refusal is not None
    with pytest.raises(review.ReviewError, match="refused by bob"):
        review.approve(push, "acme/r", c.id, actor="carol", identity="carol")
    assert not store.commit("acme/r", c.id).approved


def test_two_person_rule_for_imported_commits(store: Store) -> None:
    policy = policy_from_mapping({"two-person-review": True})
    assert policy.two_person_review and Policy().fingerprint() != policy.fingerprint()
    push = PushStore.open(store)
    c = _commit(store, "acme/t", "x", author="alice")
    with pytest.raises(review.ReviewError, match="self-approval"):
        review.approve(push, "acme/t", c.id[:10], actor="alice", identity="alice",
                       policy=policy)
    st = review.approve(push, "acme/t", c.id, actor="bob", identity="bob", policy=policy)
    assert st.state == "pending" and st.approvers == ("bob",) and st.missing == 1
    st = review.approve(push, "acme/t", c.id, actor="carol", identity="carol", policy=policy)
    assert st.state == "approved"
    with pytest.raises(review.ReviewError, match="already approved"):
        review.approve(push, "acme/t", c.id, actor="dave", identity="dave", policy=policy)


def test_pull_requests_refs_and_sessions(store: Store) -> None:
    push = PushStore.open(store)
    c = _commit(store, "acme/p", "x")
    store.approve("acme/p", c.id, actor="ops")
    a = push.open_pr("acme/p", "one", "", "token:x/1", "main")
    b = push.open_pr("acme/p", "two", "", "token:x/1", "main")
    assert (a.num, b.num, b.ref) == (1, 2, "refs/pr/2")
    assert pr_number("refs/pr/2") == 2 and pr_number("refs/pr/02") is None
    epoch = store.access_epoch()
    push.create_ref("acme/p", "v1", "tag", c.id, "token:x/1")
    assert store.access_epoch() != epoch  # serving replicas drop cached access decisions
    with pytest.raises(ConflictError):
        push.create_ref("acme/p", "v1", "tag", c.id, "token:x/1")
    assert push.delete_ref("acme/p", "v1", "tag", "token:x/1") == c.id
    with pytest.raises(RevisionNotFound):
        push.delete_ref("acme/p", "v1", "tag", "token:x/1")
    with pytest.raises(ConflictError):
        push.delete_ref("acme/p", "main", "branch", "token:x/1")
    pending = _commit(store, "acme/p", "y")
    assert push.request_tag("acme/p", pending.id, "v2").requested_tags == ("v2",)
    store.approve("acme/p", pending.id, actor="ops")
    assert store.resolve("acme/p", "v2").id == pending.id
    sid, s = push.create_session("tok", 60)
    assert push.session(sid, 60) == s and push.session("other", 60) is None
    push.end_session(sid)
    assert push.session(sid, 60) is None
    assert push.secret("x") == push.secret("x") and len(push.secret("x")) == 32
    push.delete_repo("acme/p", actor="root")
    assert store.repo("acme/p") is None
    assert [e.action for e in store.approvals("acme/p")][-1] == "delete-repo"
