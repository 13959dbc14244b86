"""A lying mirror never gets a byte into the store, or outside the quarantine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.conftest import REPO, Paths, malicious_pickle, model_files
from airlock.hostile import COMMIT, HostileHub
from airlock.support import Live, store_state
from airlock.test_pull import pull

CASES = {
    "traversal-name": "airlock-unsafe-path",
    "absolute-name": "airlock-unsafe-path",
    "etag-traversal": "airlock-etag-mismatch",
    "etag-wrong": "airlock-etag-mismatch",
    "commit-not-hex": "airlock-bad-commit-id",
    "head-commit": "airlock-commit-mismatch",
    "refs-commit": "airlock-commit-mismatch",
    "lfs-size": "airlock-size-mismatch",
    "head-size": "airlock-size-mismatch",
    "short-body": "airlock-size-mismatch",
}


def _nothing_escaped(root: Path) -> None:
    for name in ("evil.bin", "evil_blob", "evil_tree", "evil_tree.json"):
        assert not list(root.rglob(name)), name
    assert not Path("/tmp/evil.bin").exists()


@pytest.mark.parametrize("lie", sorted(CASES))
def test_lie_is_rejected(lie: str, tiny_model: Path, paths: Paths,
                         hostile: Callable[[HostileHub], Live]) -> None:
    live = hostile(HostileHub(REPO, model_files(tiny_model), {lie}))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1, err
    assert f"rejected: {CASES[lie]}" in err and "Nothing was promoted" in err
    assert store_state(paths.store) == {}
    assert not paths.manifest.exists()
    assert not list((paths.store / "tmp").glob("quarantine-*"))
    _nothing_escaped(paths.root)


def test_tampered_bytes_never_pass(tiny_model: Path, paths: Paths,
                                   hostile: Callable[[HostileHub], Live]) -> None:
    """Small files are read whole by the remote pre-scan, so the mismatch with the LFS sha256
    blocks the pull before any download (big files are caught by the download's hash)."""
    live = hostile(HostileHub(REPO, model_files(tiny_model), {"tamper"}))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1, err
    assert "policy-scan-unscannable [model.safetensors]" in err, err
    assert store_state(paths.store) == {}
    assert not list((paths.store / "tmp").glob("quarantine-*"))


def test_range_reads_that_disagree_with_the_download_are_rejected(
        tiny_model: Path, paths: Paths, hostile: Callable[[HostileHub], Live]) -> None:
    """The remote pre-scan judged bytes that the verified download does not contain: the
    verdict cannot stand for the download, so the pull is rejected."""
    files = model_files(tiny_model)
    n = 1 << 20
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    files["big.safetensors"] = len(header).to_bytes(8, "little") + header + bytes(n)
    live = hostile(HostileHub(REPO, files, {"range-swap"}))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1, err
    assert "rejected: airlock-hash-mismatch" in err and "pre-scan" in err, err
    assert store_state(paths.store) == {}
    assert not paths.manifest.exists()


def test_honest_fake_hub_is_admitted(tiny_model: Path, paths: Paths,
                                     hostile: Callable[[HostileHub], Live]) -> None:
    live = hostile(HostileHub(REPO, model_files(tiny_model)))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 0, err
    assert store_state(paths.store)[REPO]["approved"] == [COMMIT]


def test_server_error_is_clean(tiny_model: Path, paths: Paths,
                               hostile: Callable[[HostileHub], Live]) -> None:
    live = hostile(HostileHub(REPO, model_files(tiny_model), {"get-500"}))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 4 and "Traceback" not in err
    assert store_state(paths.store) == {}
    assert not list((paths.store / "tmp").glob("quarantine-*"))


def test_malicious_model_never_reaches_the_store(tiny_model: Path, paths: Paths,
                                                 hostile: Callable[[HostileHub], Live]) -> None:
    marker = paths.root / "marker"
    files = model_files(tiny_model)
    files["pytorch_model.bin"] = malicious_pickle(marker)
    live = hostile(HostileHub(REPO, files))
    code, out, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1
    assert "policy-scan-malicious" in err and "pytorch_model.bin" in err
    assert "malicious" in out
    assert store_state(paths.store) == {} and not paths.manifest.exists()
    assert not marker.exists()  # never unpickled


def test_pickle_only_model_blocked_by_require_safetensors(
        tiny_model: Path, paths: Paths, hostile: Callable[[HostileHub], Live]) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    files = {k: v for k, v in model_files(tiny_model).items() if k != "model.safetensors"}
    files["pytorch_model.bin"] = buf.getvalue()
    live = hostile(HostileHub(REPO, files))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1 and "policy-require-safetensors" in err
    # A pinned, in-date exception waives exactly that file.
    import hashlib

    sha = hashlib.sha256(files["pytorch_model.bin"]).hexdigest()
    policy = paths.root / "mlwarden.toml"
    policy.write_text(
        "[[policy.exceptions]]\nrule = \"policy-require-safetensors\"\n"
        f"sha256 = \"{sha}\"\njustification = \"legacy model, conversion scheduled\"\n"
        "approver = \"alice\"\nexpires = 2999-01-01\n")
    code, _, err = pull(paths, REPO, "--endpoint", live.url, "--policy", str(policy))
    assert code == 0, err
    assert "policy-exception-applied" in err
    import yaml

    entry = yaml.safe_load(paths.manifest.read_text())["models"][REPO]
    assert entry["exceptions"][0]["approver"] == "alice"


def test_remote_code_needs_a_review(tiny_model: Path, paths: Paths,
                                    hostile: Callable[[HostileHub], Live]) -> None:
    files = model_files(tiny_model)
    files["modeling_custom.py"] = b"import torch\nclass Custom(torch.nn.Module):\n    pass\n"
    live = hostile(HostileHub(REPO, files))
    code, _, err = pull(paths, REPO, "--endpoint", live.url)
    assert code == 1 and "policy-remote-code" in err
    policy = paths.root / "mlwarden.toml"
    policy.write_text(f"[[policy.remote-code]]\nmodel = \"{REPO}\"\ncommit = \"{COMMIT}\"\n"
                      "reviewer = \"bob\"\n")
    code, _, err = pull(paths, REPO, "--endpoint", live.url, "--policy", str(policy))
    assert code == 0, err
    import yaml

    entry = yaml.safe_load(paths.manifest.read_text())["models"][REPO]
    assert entry["remote_code"]["reviewer"] == "bob"
    assert entry["remote_code"]["commit"] == COMMIT
