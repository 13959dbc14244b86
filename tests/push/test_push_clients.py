"""The real huggingface_hub and transformers clients pushing to the registry on loopback."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mlwarden.store.push import PushStore
from push.support import ConsoleClient, run_client

SCRIPT = '''import subprocess


def run_tool(args):
    """Helper used by the training notebook."""
    return subprocess.run(args, check=True)
'''


def _extras(tmp: Path) -> Path:
    d = tmp / "extras"
    (d / "scripts").mkdir(parents=True)
    (d / "scripts" / "tool.py").write_text(SCRIPT)
    (d / "eval.json").write_text('{"accuracy": 0.91}\n')
    return d


def test_push_to_hub_and_upload_folder_review_then_load(serve, tiny_model: Path,
                                                          tmp_path: Path) -> None:
    """Done-when: transformers push_to_hub and huggingface_hub upload_folder land pending
    commits; the console shows them with findings; after approval from_pretrained loads the
    model through the registry."""
    srv = serve()
    pusher = srv.token("ci-push", "acme:write", owner="dev")
    reviewer = srv.token("review", "acme:approve", owner="rev")
    reader = srv.token("reader", "acme:read")
    repo = "acme/tiny"
    res = run_client(tmp_path, srv.url, pusher, [
        {"op": "xet"},
        {"op": "push_to_hub", "repo": repo, "local": str(tiny_model)},
        {"op": "upload_folder", "repo": repo, "folder": str(_extras(tmp_path)),
         "message": "add eval and tools"},
    ])
    assert res[0]["xet"] is True  # the default install: hf_xet present, no env var set
    assert all(r["ok"] for r in res), res[-1]
    assert "awaits review" in res[-1]["stderr"]  # the client printed the server's warning
    head = res[2]["oid"]

    # Pending: invisible to readers, by branch and by commit id.
    before = run_client(tmp_path / "r0", srv.url, reader, [
        {"op": "from_pretrained", "repo": repo, "stop_on_error": False},
        {"op": "info", "repo": repo, "revision": head, "stop_on_error": False}])
    assert not before[0]["ok"] and not before[1]["ok"]
    assert before[1]["error"] == "RevisionNotFoundError"

    console = ConsoleClient(srv.url)
    assert console.login(reviewer).status_code == 303
    dash = console.get("/ui/").text
    assert head[:12] in dash and "pending review" in dash
    page = console.get(f"/ui/repos/{repo}/commits/{head}").text
    assert "scripts/tool.py" in page and "code-" in page  # the finding on the helper script
    assert "model.safetensors" in page and ">added<" in page  # diff vs the initial commit
    r = console.review(repo, head, "approve", "looks fine")
    assert r.status_code == 303 and "msg=approved" in r.headers["location"]

    after = run_client(tmp_path / "r1", srv.url, reader, [
        {"op": "from_pretrained", "repo": repo},
        {"op": "info", "repo": repo}])
    assert after[0]["ok"], after[0]
    assert after[0]["shape"] == [1, 4, 32]
    assert after[1]["sha"] == head and "scripts/tool.py" in after[1]["files"]
    # The commits under the approved one were approved with it (superseded), not left behind.
    push = PushStore.open(srv.store)
    older = [p for p in push.pushes(repo) if p.commit != head]
    assert older and all(p.superseded_by == head for p in older)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_without_hf_xet_inline_and_large_multipart(serve, tiny_model: Path,
                                                    tmp_path: Path) -> None:
    """hf_xet not installed: the same default server works (inline), and in --lfs-uploads
    mode a large file goes through the LFS batch API in several multipart PUTs."""
    srv = serve()
    pusher = srv.token("ci", "acme:write", "acme:approve")
    res = run_client(tmp_path, srv.url, pusher, [
        {"op": "xet"},
        {"op": "push_to_hub", "repo": "acme/noxet", "local": str(tiny_model)},
    ], xet=False)
    assert res[0]["xet"] is False
    assert res[1]["ok"], res[1]
    assert PushStore.open(srv.store).push("acme/noxet", res[1]["oid"]) is not None

    big = serve(upload_mode="lfs", multipart_threshold=2 << 20, multipart_chunk=1 << 20)
    token = big.token("ci", "acme:write")
    folder = tmp_path / "big"
    shutil.copytree(tiny_model, folder)
    import torch
    from safetensors.torch import save_file

    save_file({"emb": torch.randn(1300, 1024)}, folder / "extra.safetensors")  # ~5.2 MB
    res = run_client(tmp_path / "c2", big.url, token, [
        {"op": "create_repo", "repo": "acme/big"},
        {"op": "upload_folder", "repo": "acme/big", "folder": str(folder)},
    ], xet=False)
    assert res[1]["ok"], res[1]
    big.flush_audit()
    parts = [e for e in big.store.audit(action="lfs-part") if e.path == _sha(
        folder / "extra.safetensors")]
    assert len(parts) == 6 and sum(e.bytes for e in parts) == (folder / "extra.safetensors"
                                                              ).stat().st_size
    assert big.store.audit(action="lfs-complete") and big.store.audit(action="lfs-verify")
    from mlwarden.registry.review import approve

    approve(PushStore.open(big.store), "acme/big", res[1]["oid"], actor="t", identity="t")
    reader = big.token("reader", "acme:read")
    got = run_client(tmp_path / "c3", big.url, reader, [
        {"op": "download", "repo": "acme/big", "path": "extra.safetensors"}])
    assert got[0]["bytes"] == (folder / "extra.safetensors").stat().st_size
    with big.store.open_blob(_sha(folder / "extra.safetensors")) as fh:
        stored = hashlib.sha256(fh.read()).hexdigest()
    assert stored == _sha(folder / "extra.safetensors")
    quarantine = big.store.tmp / "quarantine"
    assert not any((quarantine / "lfs").iterdir()) and not any((quarantine / "parts").iterdir())


def test_with_hf_xet_in_lfs_mode_fails_fast_without_a_commit(serve, tmp_path: Path) -> None:
    """In --lfs-uploads mode a client with hf_xet asks for a Xet token; the registry says
    501 (not retried) and nothing is committed. docs/registry.md names the client setting."""
    srv = serve(upload_mode="lfs")
    token = srv.token("ci", "acme:write")
    d = tmp_path / "w"
    d.mkdir()
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(4)}, d / "model.safetensors")
    res = run_client(tmp_path, srv.url, token, [
        {"op": "create_repo", "repo": "acme/x"},
        {"op": "upload_folder", "repo": "acme/x", "folder": str(d)}])
    assert not res[1]["ok"]
    assert "501" in res[1]["message"] and "xet-write-token" in res[1]["message"]
    assert len(srv.store.commits("acme/x")) == 1  # only the initial commit


def test_malicious_pickle_push_is_refused_at_commit_time(serve, tmp_path: Path) -> None:
    from corpus.containers import payload_pickle

    srv = serve()
    token = srv.token("ci", "acme:write", owner="dev")
    marker = tmp_path / "pwned"
    evil = tmp_path / "pytorch_model.bin"
    evil.write_bytes(payload_pickle(marker))
    d = tmp_path / "evil"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert"}')
    shutil.copy(evil, d / "pytorch_model.bin")
    res = run_client(tmp_path, srv.url, token, [
        {"op": "create_repo", "repo": "acme/evil"},
        {"op": "upload_file", "repo": "acme/evil", "path": "pytorch_model.bin",
         "local": str(evil), "stop_on_error": False},
        {"op": "upload_folder", "repo": "acme/evil", "folder": str(d),
         "create_pr": True, "stop_on_error": False},
    ])
    for r in res[1:]:
        assert not r["ok"] and r["error"] == "HfHubHTTPError", r
        assert "422" in r["message"] and "policy-scan-malicious" in r["message"]
        assert "pickle" in r["message"]  # the scanner's own rule id is named too
    assert not marker.exists()
    # No commit, no pull request ref, no blob, nothing left in quarantine.
    commits = srv.store.commits("acme/evil")
    assert [c.message for c in commits] == ["initial commit"]
    push = PushStore.open(srv.store)
    assert push.pushes("acme/evil") == []
    assert not srv.store.blobs.exists(_sha(evil))
    q = srv.store.tmp / "quarantine"
    assert not any((q / "incoming").iterdir()) and not any((q / "lfs").iterdir())
    refusals = push.refusals(repo="acme/evil")
    assert len(refusals) == 2 and "policy-scan-malicious" in refusals[0].rules
    assert refusals[0].identity == "dev"
    srv.flush_audit()
    assert len(srv.store.audit(action="push-refused")) == 2


def test_two_person_review_and_self_approval(serve, tmp_path: Path) -> None:
    from mlwarden.policy import Policy

    srv = serve(policy=Policy(two_person_review=True))
    alice_push = srv.token("alice-push", "acme:write", owner="alice")
    alice = srv.token("alice-review", "acme:approve", owner="alice")
    bob = srv.token("bob", "acme:approve", owner="bob")
    carol = srv.token("carol", "acme:approve", owner="carol")
    f = tmp_path / "notes.md"
    f.write_text("# notes\n")
    res = run_client(tmp_path, srv.url, alice_push, [
        {"op": "create_repo", "repo": "acme/two"},
        {"op": "upload_file", "repo": "acme/two", "path": "notes.md", "local": str(f)}])
    cid = res[1]["oid"]

    as_alice = ConsoleClient(srv.url)
    as_alice.login(alice)
    page = as_alice.get(f"/ui/repos/acme/two/commits/{cid}").text
    assert 'id="self-approval"' in page and 'id="approve"' not in page
    r = as_alice.review("acme/two", cid, "approve")  # forged without the button: still refused
    assert r.status_code == 409 and "self-approval refused" in r.text

    as_bob = ConsoleClient(srv.url)
    as_bob.login(bob)
    r = as_bob.review("acme/two", cid, "approve", "first look")
    assert r.status_code == 303 and "msg=voted" in r.headers["location"]
    assert not srv.store.commit("acme/two", cid).approved  # one of two
    r = as_bob.review("acme/two", cid, "approve")
    assert r.status_code == 409 and "already approved" in r.text

    reader = srv.token("reader", "acme:read")
    mid = run_client(tmp_path / "m", srv.url, reader, [
        {"op": "download", "repo": "acme/two", "path": "notes.md", "stop_on_error": False}])
    assert not mid[0]["ok"]

    as_carol = ConsoleClient(srv.url)
    as_carol.login(carol)
    r = as_carol.review("acme/two", cid, "approve", "second look")
    assert "msg=approved" in r.headers["location"]
    assert srv.store.commit("acme/two", cid).approved
    final = run_client(tmp_path / "f", srv.url, reader, [
        {"op": "download", "repo": "acme/two", "path": "notes.md", "hex": True}])
    assert bytes.fromhex(final[0]["bytes"]) == b"# notes\n"
    note = [e for e in srv.store.approvals("acme/two") if e.action == "approve"][-1].note
    assert "bob" in note and "carol" in note

    # The requirement travels with the commit: the CLI without the policy still needs two.
    res = run_client(tmp_path / "g", srv.url, alice_push, [
        {"op": "upload_file", "repo": "acme/two", "path": "more.md", "local": str(f)}])
    from mlwarden.registry import review

    push = PushStore.open(srv.store)
    st = review.approve(push, "acme/two", res[0]["oid"], actor="ops", identity="ops")
    assert st.state == "pending" and st.missing == 1
    with pytest.raises(review.ReviewError, match="self-approval"):
        review.approve(push, "acme/two", res[0]["oid"], actor="x", identity="alice")


def test_pull_requests_branches_tags_and_admin_only_delete(serve, tmp_path: Path) -> None:
    srv = serve()
    dev = srv.token("dev", "acme:write")
    admin = srv.token("root", "*:admin")
    f = tmp_path / "a.txt"
    f.write_text("a\n")
    d = tmp_path / "folder"
    d.mkdir()
    (d / "b.txt").write_text("b\n")
    res = run_client(tmp_path, srv.url, dev, [
        {"op": "create_repo", "repo": "acme/pr"},
        {"op": "create_commit", "repo": "acme/pr", "add": {"a.txt": str(f)},
         "create_pr": True, "message": "propose a"},              # legacy create_pr=1
        {"op": "upload_folder", "repo": "acme/pr", "folder": str(d), "create_pr": True},  # pipeline
        {"op": "create_branch", "repo": "acme/pr", "branch": "dev"},
        {"op": "create_tag", "repo": "acme/pr", "tag": "v0"},
        {"op": "upload_file", "repo": "acme/pr", "path": "c.txt", "local": str(f),
         "revision": "dev"},
        {"op": "whoami"},
        {"op": "delete_repo", "repo": "acme/pr", "stop_on_error": False},
    ])
    assert all(r["ok"] for r in res[:7]), res
    assert res[1]["pr_revision"] == "refs/pr/1" and res[2]["pr_revision"] == "refs/pr/2"
    assert res[6]["whoami"]["auth"]["accessToken"]["role"] == "write"
    assert not res[7]["ok"] and "403" in res[7]["message"]
    push = PushStore.open(srv.store)
    from mlwarden.registry.review import approve

    approve(push, "acme/pr", res[1]["oid"], actor="t", identity="t")
    approve(push, "acme/pr", res[5]["oid"], actor="t", identity="t")
    reader = srv.token("reader", "acme:read")
    view = run_client(tmp_path / "r", srv.url, reader, [
        {"op": "refs", "repo": "acme/pr"},
        {"op": "download", "repo": "acme/pr", "path": "a.txt", "revision": "refs/pr/1"},
        {"op": "download", "repo": "acme/pr", "path": "a.txt", "stop_on_error": False},
        {"op": "download", "repo": "acme/pr", "path": "c.txt", "revision": "dev"},
        {"op": "download", "repo": "acme/pr", "path": "b.txt", "revision": "refs/pr/2",
         "stop_on_error": False},
    ])
    refs = view[0]
    assert refs["prs"] == {"refs/pr/1": res[1]["oid"]}  # refs/pr/2 is still pending
    assert set(refs["branches"]) == {"main", "dev"} and set(refs["tags"]) == {"v0"}
    assert view[1]["ok"] and view[1]["bytes"] == 2
    assert not view[2]["ok"]  # a PR never touches main
    assert view[3]["ok"] and not view[4]["ok"]
    tail = run_client(tmp_path / "t", srv.url, dev, [
        {"op": "delete_tag", "repo": "acme/pr", "tag": "v0"},
        {"op": "delete_file", "repo": "acme/pr", "path": ".gitattributes"},
    ])
    assert all(r["ok"] for r in tail), tail
    assert "v0" not in {r.name for r in srv.store.refs("acme/pr")}
    gone = run_client(tmp_path / "d", srv.url, admin, [{"op": "delete_repo", "repo": "acme/pr"}])
    assert gone[0]["ok"] and srv.store.repo("acme/pr") is None
    assert any(e.action == "delete-repo" for e in srv.store.approvals("acme/pr"))
