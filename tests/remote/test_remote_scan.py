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
from registry.services import wait_port
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
    try:
        wait_port(port, proc)
    except RuntimeError:
        proc.kill()
        pytest.skip("moto server did not start")
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


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """gcp-storage-emulator on loopback (bucket ``models``), found by gcsfs through
    STORAGE_EMULATOR_HOST as it would find any emulator."""
    pytest.importorskip("gcsfs")
    pytest.importorskip("gcp_storage_emulator")
    from corpus.models import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gcp_storage_emulator", "start", "--host",
                             "127.0.0.1", "--port", str(port), "--default-bucket", "models",
                             "--in-memory", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
    except RuntimeError:
        proc.kill()
        pytest.skip("gcp-storage-emulator did not start")
    # The emulator speaks the JSON API only: no storage-control probe (and no credentials).
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import fsspec

    fsspec.AbstractFileSystem.clear_instance_cache()
    yield env
    proc.kill()
    proc.wait(10)
    fsspec.AbstractFileSystem.clear_instance_cache()


def test_gs_prefix_against_an_emulator_matches_local(tmp_path: Path, gcs: Any) -> None:
    import fsspec

    corpus = build_corpus(tmp_path / "corpus")
    shutil.rmtree(corpus / "benign")  # keep the upload small; the hf test covers them
    big = corpus / "formats" / "zz_big.safetensors"
    _big_safetensors(big, 8)
    fs = fsspec.filesystem("gs")
    for p in sorted(corpus.rglob("*")):
        if p.is_file():
            fs.put_file(str(p), f"models/acme/corpus/{p.relative_to(corpus).as_posix()}")
    done = scan_tree(open_remote("gs://models/acme/corpus"), ScanOptions())
    want = _by_rel(scan_local([str(corpus)], ScanOptions(workers=1)), str(corpus) + "/")
    assert len(want) > 40
    assert _by_rel(done.results, "gs://models/acme/corpus/") == want
    assert done.bytes_read < done.tree.total_size / 4  # range reads, not downloads
    # the CLI, in a fresh process, with the endpoint from the standard variable
    proc = subprocess.run([sys.executable, "-m", "mlwarden", "scan",
                           "gs://models/acme/corpus/formats/zz_big.safetensors",
                           "gs://models/acme/corpus", "--format", "json"],
                          env={**os.environ, **gcs}, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    one, whole = doc["meta"]["remote"]
    assert one["files"] == 1 and one["bytes_read"] < 1 << 20
    assert whole["bytes_read"] < whole["total_bytes"]
    assert {f["path"] for f in doc["files"]} >= {
        "gs://models/acme/corpus/formats/zz_big.safetensors"}


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


class NoBlobs:
    """ASGI wrapper: a mirror whose repository info carries no file metadata."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.tree_requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if "/tree/" in scope["path"]:
                self.tree_requests += 1
            scope = {**scope, "query_string": scope.get("query_string", b"")
                     .replace(b"blobs=true", b"blobs=false")}
        await self.app(scope, receive, send)


def test_paths_inside_a_repository_and_the_tree_fallback(tmp_path: Path,
                                                         registry: Any) -> None:
    store, start = registry
    m = tmp_path / "m"
    (m / "sub").mkdir(parents=True)
    _big_safetensors(m / "sub" / "model.safetensors", 1)
    (m / "sub" / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    (m / "config.json").write_text("{}")
    commit = publish(store, m, "acme/parts")
    live = start()
    one = open_remote("hf://acme/parts/sub/evil.pkl", live.url)
    assert [f.path for f in one.files] == ["sub/evil.pkl"] and not one.whole_repository
    folder = open_remote(f"hf://acme/parts@{commit}/sub", live.url)
    assert [f.path for f in folder.files] == ["sub/evil.pkl", "sub/model.safetensors"]
    done = scan_tree(folder, ScanOptions())
    assert {r.path: r.verdict for r in done.results} == {
        f"hf://acme/parts@{commit}/sub/evil.pkl": Verdict.MALICIOUS,
        f"hf://acme/parts@{commit}/sub/model.safetensors": Verdict.CLEAN}
    with pytest.raises(Exception, match="nope is not in acme/parts"):
        open_remote("hf://acme/parts/nope", live.url)
    # An endpoint whose info lacks file metadata is listed through the tree API instead,
    # with the same result (LFS sha256 included).
    wrapped: list[NoBlobs] = []
    plain = start(lambda app: wrapped.append(NoBlobs(app)) or wrapped[-1])
    listed = open_remote("hf://acme/parts", plain.url)
    assert wrapped[0].tree_requests >= 1
    direct = open_remote("hf://acme/parts", live.url)
    assert listed.files == direct.files and listed.commit == direct.commit == commit
    assert any(f.sha256_source == "lfs-metadata" for f in direct.files)


def test_hf_token_is_sent_exactly_when_huggingface_hub_would(tmp_path: Path,
                                                             registry: Any) -> None:
    """HF_TOKEN and the stored token reach the endpoint, unless
    HF_HUB_DISABLE_IMPLICIT_TOKEN says not to (a gated repository tells them apart)."""
    store, start = registry
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}")
    publish(store, m, "acme/gated")
    store.set_gated("acme/gated", True)
    _, token = store.create_token("reader", ["acme:read"])
    live = start()
    base = {k: v for k, v in isolated_env(tmp_path, HF_ENDPOINT=live.url).items()
            if k != "HF_HUB_DISABLE_IMPLICIT_TOKEN"}

    def scan(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlwarden", "scan", "hf://acme/gated",
                               "--format", "json"], env=env, capture_output=True, text=True,
                              timeout=120)

    assert scan({**base, "HF_TOKEN": token}).returncode == 0
    refused = scan({**base, "HF_TOKEN": token, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"})
    assert refused.returncode == 4 and "gated" in refused.stderr, refused.stderr
    (tmp_path / "hf-home").mkdir(exist_ok=True)
    (tmp_path / "hf-home" / "token").write_text(token)  # `hf auth login`'s stored token
    assert scan(base).returncode == 0
    assert scan({**base, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}).returncode == 4


class Tamper:
    """ASGI wrapper: the bytes served for ``config.json`` differ from the tree's oid."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/config.json"):
            await self.app(scope, receive, send)
            return

        async def flip(msg: Any) -> None:
            if msg["type"] == "http.response.body" and msg.get("body"):
                msg = {**msg, "body": b"[" + msg["body"][1:]}
            await send(msg)

        await self.app(scope, receive, flip)


def test_small_file_whose_bytes_differ_from_the_tree_oid(tmp_path: Path,
                                                         registry: Any) -> None:
    store, start = registry
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text('{"model_type": "bert"}')
    publish(store, m, "acme/lying")
    live = start(Tamper)
    (r,) = scan_tree(open_remote("hf://acme/lying", live.url), ScanOptions()).results
    assert r.verdict is Verdict.UNSCANNABLE
    assert [f.rule for f in r.findings if f.rule == "remote-hash-mismatch"], r.findings
    assert any("the tree's oid says" in f.message for f in r.findings)


def test_range_reads_reuse_connections(tmp_path: Path, registry: Any,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A range read leaves its connection in the pool: once warm, a whole scan (metadata
    and every range read) opens no new connection. Closing it after each read would cost
    a TCP and a TLS handshake per read against the Hub."""
    import socket

    store, start = registry
    m = tmp_path / "model"
    m.mkdir()
    for i in range(3):
        _big_safetensors(m / f"model-{i}.safetensors", 2)
    (m / "config.json").write_text('{"model_type": "bert"}')
    publish(store, m, "acme/pooled")
    live = start()
    options = ScanOptions(workers=1)  # one request at a time: one pooled connection
    scan_tree(open_remote("hf://acme/pooled", live.url), options)
    connects: list[object] = []
    real = socket.socket.connect

    def counting(self: socket.socket, address: Any) -> None:
        connects.append(address)
        real(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    done = scan_tree(open_remote("hf://acme/pooled", live.url), options)
    assert done.requests >= 4 and all(r.verdict == Verdict.CLEAN for r in done.results)
    assert connects == []
