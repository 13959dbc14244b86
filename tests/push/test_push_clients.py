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
    blob = big.store.blob_path(_sha(folder / "extra.safetensors"))
    assert _sha(blob) == _sha(folder / "extra.safetensors")
    quarantine = big.store.blobs.tmp / "quarantine"
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
