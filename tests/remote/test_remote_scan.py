"""`mlwarden scan hf://...` against `mlwarden serve` on loopback: the same verdicts as a local
scan of the same bytes, a fraction of the bytes read, 429s honoured, repository checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airlock.support import isolated_env
from corpus import containers, formats, pickles
from mlwarden.report.model import Verdict
from mlwarden.scan.engine import ScanOptions, scan_local
from mlwarden.scan.sources import open_remote
from mlwarden.scan.sources.scanning import scan_tree
from remote.support import publish


def build_corpus(d: Path) -> Path:
    """The test corpus: every format sample, every malicious pickle technique, benign
    pickles from the real libraries, hostile containers."""
    formats.build_all(d / "formats")
    marker = str(d / "PWNED")
    for name, data in pickles.malicious_samples(marker).items():
        (d / "pickles").mkdir(parents=True, exist_ok=True)
        (d / "pickles" / f"{name}.pkl").write_bytes(data)
    pickles.write_benign(d / "benign", transformers=False)
    (d / "containers").mkdir(parents=True, exist_ok=True)
    containers.torch_zip(d / "containers" / "evil_torch.pt", Path(marker))
    (d / "containers" / "nested.tar").write_bytes(containers.tar_of(
        {"inner/evil.pkl": containers.payload_pickle(Path(marker))}))
    (d / "containers" / "npz.zip").write_bytes(containers.zip_of(
        {"a.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, "
                  b"'shape': (1,), }" + b" " * 59 + b"\n" + b"\0" * 4}))
    return d


def _by_rel(results: Any, prefix: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    out = {}
    for r in results:
        assert r.path.startswith(prefix), r.path
        out[r.path[len(prefix):]] = (r.format, r.verdict.value,
                                     tuple(sorted(f.rule for f in r.findings)))
    return out


def test_remote_and_local_verdicts_agree_on_the_whole_corpus(tmp_path: Path,
                                                             registry: Any) -> None:
    store, start = registry
    corpus = build_corpus(tmp_path / "corpus")
    commit = publish(store, corpus, "corpus/all")
    live = start()
    local = scan_local([str(corpus)], ScanOptions(workers=1))
    tree = open_remote("hf://corpus/all", live.url)
    assert tree.commit == commit
    remote = scan_tree(tree, ScanOptions())
    want = _by_rel(local, str(corpus) + "/")
    got = _by_rel(remote.results, f"hf://corpus/all@{commit}/")
    assert len(want) > 60
    assert got == want
    assert any(v == "malicious" for _, v, _ in got.values())
    assert any(v == "clean" for _, v, _ in got.values())


def _big_safetensors(path: Path, mib: int) -> None:
    n = mib << 20
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
    with open(path, "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header)
        fh.truncate(8 + len(header) + n)


def test_cli_json_paths_commit_lfs_sha_and_bytes_read(tmp_path: Path, registry: Any) -> None:
    store, start = registry
    m = tmp_path / "model"
    m.mkdir()
    _big_safetensors(m / "model.safetensors", 24)
    (m / "config.json").write_text('{"model_type": "bert"}')
    (m / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    commit = publish(store, m, "acme/big", tags=("v1",))
    live = start()
    env = isolated_env(tmp_path, HF_ENDPOINT=live.url)
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "hf://acme/big@v1",
                           str(m), "--format", "json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # malicious
    doc = json.loads(proc.stdout)
    files = {f["path"]: f for f in doc["files"]}
    root = f"hf://acme/big@{commit}"
    st = files[f"{root}/model.safetensors"]
    assert st["verdict"] == "clean" and st["sha256_source"] == "lfs-metadata"
    assert st["sha256"] == files[f"{m}/model.safetensors"]["sha256"] or \
        files[f"{m}/model.safetensors"]["sha256"] is None
    assert files[f"{root}/evil.pkl"]["verdict"] == "malicious"
    meta = doc["meta"]["remote"][0]
    assert meta["commit"] == commit and meta["revision"] == "v1"  # never the tag as revision
    assert meta["bytes_read"] < meta["total_bytes"] * 0.01
    assert meta["requests"] <= 6


def test_unknown_repo_is_a_clean_error(tmp_path: Path, registry: Any) -> None:
    _, start = registry
    live = start()
    env = isolated_env(tmp_path, HF_ENDPOINT=live.url)
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "hf://nobody/nothing"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert "repository not found" in proc.stderr and "Traceback" not in proc.stderr


def test_repository_checks_run_on_remote_repositories(tmp_path: Path, registry: Any) -> None:
    store, start = registry
    m = tmp_path / "sharded"
    m.mkdir()
    (m / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    _big_safetensors(m / "model-00001-of-00002.safetensors", 1)
    (m / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}}))
    publish(store, m, "acme/sharded")
    live = start()
    done = scan_tree(open_remote("hf://acme/sharded", live.url), ScanOptions())
    rules = {f.rule for r in done.results for f in r.findings}
    assert {"repo-missing-shard", "repo-missing-code"} <= rules
    local = scan_local([str(m)], ScanOptions())
    assert {f.rule for r in local for f in r.findings} == rules


class TooMany:
    """ASGI wrapper: the first ``n`` range reads answer 429 with Retry-After: 1."""

    def __init__(self, app: Any, n: int) -> None:
        self.app = app
        self.left = n
        self.refused: list[float] = []
        self.served_after: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/resolve/" in scope["path"]:
            headers = dict(scope.get("headers") or [])
            if b"range" in headers:
                if self.left > 0:
                    self.left -= 1
                    self.refused.append(time.monotonic())
                    await send({"type": "http.response.start", "status": 429,
                                "headers": [(b"retry-after", b"1"),
                                            (b"content-length", b"0")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
                self.served_after.append(time.monotonic())
        await self.app(scope, receive, send)


def test_429_with_retry_after_is_honoured(tmp_path: Path, registry: Any) -> None:
    store, start = registry
    m = tmp_path / "m"
    m.mkdir()
    _big_safetensors(m / "model.safetensors", 2)
    (m / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    publish(store, m, "acme/busy")
    wrappers: list[TooMany] = []

    def wrap(app: Any) -> Any:
        wrappers.append(TooMany(app, 3))
        return wrappers[-1]

    live = start(wrap)
    done = scan_tree(open_remote("hf://acme/busy", live.url), ScanOptions())
    w = wrappers[0]
    assert len(w.refused) == 3 and w.served_after
    assert w.served_after[0] - w.refused[0] >= 0.95  # nobody asked again before Retry-After
    verdicts = {r.path.rsplit("/", 1)[-1]: r.verdict for r in done.results}
    assert verdicts == {"model.safetensors": Verdict.CLEAN, "evil.pkl": Verdict.MALICIOUS}


def test_persistent_failure_is_unscannable_not_clean(tmp_path: Path, registry: Any) -> None:
    store, start = registry
    m = tmp_path / "m"
    m.mkdir()
    _big_safetensors(m / "model.safetensors", 1)
    publish(store, m, "acme/down")
    from mlwarden.scan.sources import polite

    live = start(lambda app: TooMany(app, 10_000))
    polite.configure(polite.LocalLimiter(), polite.Politeness(attempts=2, backoff=0.01))
    try:
        done = scan_tree(open_remote("hf://acme/down", live.url), ScanOptions())
    finally:
        polite.configure(None)
    (r,) = done.results
    assert r.verdict is Verdict.UNSCANNABLE
    assert any("gave up after 2 attempts (HTTP 429)" in f.message for f in r.findings)


def _moto(tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    from corpus.models import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.skip("moto server did not start")
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    proc, url = _moto(tmp_path)
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import fsspec

    fsspec.AbstractFileSystem.clear_instance_cache()
    yield url, env
    proc.kill()
    proc.wait(10)
    fsspec.AbstractFileSystem.clear_instance_cache()


def upload(prefix: str, local: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("s3")
    bucket = prefix.split("/", 1)[0]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    for p in sorted(local.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"{prefix}/{p.relative_to(local).as_posix()}")


def test_s3_prefix_against_moto_matches_local(tmp_path: Path, s3: Any) -> None:
    corpus = build_corpus(tmp_path / "corpus")
    shutil.rmtree(corpus / "benign")  # keep the upload small; the hf test covers them
    upload("models/acme/corpus", corpus)
    tree = open_remote("s3://models/acme/corpus")
    done = scan_tree(tree, ScanOptions())
    want = _by_rel(scan_local([str(corpus)], ScanOptions(workers=1)), str(corpus) + "/")
    assert _by_rel(done.results, "s3://models/acme/corpus/") == want
    # the CLI, in a fresh process, with the endpoint from the standard AWS variables
    env = {**os.environ, **s3[1]}
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan", "s3://models/acme/corpus",
                           "--format", "json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["meta"]["remote"][0]["bytes_read"] <= doc["meta"]["remote"][0]["total_bytes"]


def test_hf_scan_needs_no_extras(tmp_path: Path, registry: Any) -> None:
    """hf:// runs on the base install: nothing of s3fs, gcsfs or Ray is imported."""
    store, start = registry
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}")
    publish(store, m, "acme/plain")
    live = start()
    code = ("import sys\nfrom mlwarden.cli.main import main\n"
            "try:\n    main(['scan', 'hf://acme/plain', '--format', 'json'])\n"
            "except SystemExit as e:\n    code = e.code\n"
            "bad = [m for m in ('s3fs', 'gcsfs', 'ray', 'aiobotocore', 'pyarrow') "
            "if m in sys.modules]\n"
            "print('EXTRAS', bad, code, file=sys.stderr)\n")
    env = isolated_env(tmp_path, HF_ENDPOINT=live.url)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert "EXTRAS [] 0" in proc.stderr, proc.stderr
