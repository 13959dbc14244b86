"""The simple API as the PEPs define it, uploads, tokens and immutability (httpx, twine),
and uv installing with nothing but an index URL."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from index.support import authed, client_env, wheel
from index.test_scenarios import run, twine_upload
from mlwarden.approvals import read_log

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def published(make_index, tmp_path):
    idx = make_index()
    dist = wheel(tmp_path / "dist", "acme-core", "1.0", requires_python=">=3.8",
                 requires=["libb"])
    up = twine_upload(idx, dist, idx.write_token)
    assert up.returncode == 0, up.stdout + up.stderr
    return idx, dist


def get(idx, path: str, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    return httpx.get(idx.base + path, auth=("__token__", idx.read_token), headers=headers,
                     follow_redirects=kw.pop("follow", False), timeout=30, **kw)


def test_content_negotiation_and_pep_fields(published):
    idx, dist = published
    sha = hashlib.sha256(dist.read_bytes()).hexdigest()
    r = get(idx, "/simple/acme-core/", headers={"Accept": JSON})
    assert r.status_code == 200 and r.headers["content-type"].startswith(JSON)
    assert "Accept" in r.headers["vary"]
    doc = r.json()
    assert doc["meta"]["api-version"] == "1.1" and doc["name"] == "acme-core"
    assert doc["versions"] == ["1.0"]  # PEP 700
    (f,) = doc["files"]
    assert f["hashes"] == {"sha256": sha} and f["requires-python"] == ">=3.8"
    assert f["size"] == dist.stat().st_size and f["upload-time"].endswith("Z")
    assert f["yanked"] is False
    meta = f["core-metadata"]["sha256"]  # PEP 658 / 714
    assert f["dist-info-metadata"] == f["core-metadata"]
    # The metadata file sits next to the file and hashes as advertised.
    file_url = httpx.URL(idx.base + "/simple/acme-core/").join(f["url"])
    m = httpx.get(str(file_url) + ".metadata", auth=("__token__", idx.read_token))
    assert m.status_code == 200 and hashlib.sha256(m.content).hexdigest() == meta
    assert b"Requires-Dist: libb" in m.content
    body = httpx.get(str(file_url), auth=("__token__", idx.read_token)).content
    assert hashlib.sha256(body).hexdigest() == sha
    # PEP 503 HTML: the default, and for clients that ask for it.
    for accept in (None, "text/html", "application/vnd.pypi.simple.v1+html"):
        r = get(idx, "/simple/acme-core/", headers={"Accept": accept} if accept else {})
        assert r.status_code == 200 and "html" in r.headers["content-type"]
        assert f'#sha256={sha}"' in r.text
        assert 'data-requires-python="&gt;=3.8"' in r.text
        assert f'data-core-metadata="sha256={meta}"' in r.text
        assert f'data-dist-info-metadata="sha256={meta}"' in r.text
        assert 'name="pypi:repository-version" content="1.1"' in r.text
    # q-values, format parameter, and 406 for what is not offered.
    r = get(idx, "/simple/acme-core/",
            headers={"Accept": f"text/html;q=0.5, {JSON};q=0.9"})
    assert r.headers["content-type"].startswith(JSON)
    r = get(idx, "/simple/acme-core/?format=" + JSON)
    assert r.headers["content-type"].startswith(JSON)
    assert get(idx, "/simple/acme-core/", headers={"Accept": "image/png"}).status_code == 406
    # Non-normalised names redirect to the normalised page; the root lists the project.
    r = get(idx, "/simple/Acme_Core/")
    assert r.status_code == 301 and r.headers["location"].endswith("/acme-core/")
    root = get(idx, "/simple/", headers={"Accept": JSON}).json()
    assert {"name": "acme-core"} in root["projects"]


def test_yanking_pep_592(published):
    idx, _ = published
    code, out = run("index", *idx.cli("yank", "acme-core==1.0", "--reason", "broken build"))
    assert code == 0, out
    (f,) = get(idx, "/simple/acme-core/", headers={"Accept": JSON}).json()["files"]
    assert f["yanked"] == "broken build"
    assert 'data-yanked="broken build"' in get(idx, "/simple/acme-core/").text
    entries = [e for e in read_log(idx.store) if e.details.get("decision") == "yank"]
    assert entries and entries[0].kind == "revocation"


def test_files_are_immutable_and_uploads_need_write_scope(published, tmp_path):
    idx, dist = published
    # Same bytes again: accepted (idempotent, like PyPI); other bytes: refused.
    assert twine_upload(idx, dist, idx.write_token).returncode == 0
    other = wheel(tmp_path / "other", "acme-core", "1.0",
                  files={"acme_core/__init__.py": "X = 2\n"})
    r = twine_upload(idx, other, idx.write_token)
    assert r.returncode != 0 and "409" in r.stdout + r.stderr
    # A read token cannot upload; a write token only within its pattern.
    r2 = twine_upload(idx, wheel(tmp_path / "d2", "acme-new", "1.0"), idx.read_token)
    assert r2.returncode != 0 and "403" in r2.stdout + r2.stderr
    _, other_writer = idx.store.create_token("other", ["pkg:acme-other:write"])
    r3 = twine_upload(idx, wheel(tmp_path / "d3", "acme-new", "1.0"), other_writer)
    assert r3.returncode != 0 and "403" in r3.stdout + r3.stderr
    # A public name cannot be uploaded at all: it comes through the upstream.
    _, all_writer = idx.store.create_token("all", ["pkg:*:write"])
    r4 = twine_upload(idx, wheel(tmp_path / "d4", "libb", "9.0"), all_writer, "--verbose")
    assert r4.returncode != 0 and "internal namespace" in r4.stdout + r4.stderr
    # No token, bad token: 401 with a Basic challenge.
    r = httpx.get(idx.url)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = httpx.get(idx.url, auth=("__token__", "mlw_000000000000_" + "x" * 43))
    assert r.status_code == 401
    idx.flush()
    assert any(e.action == "denied" and e.status == 401 for e in idx.store.audit())


def test_mlwarden_index_add_and_cli_views(make_index, tmp_path):
    idx = make_index()
    d = wheel(tmp_path / "dist", "acme-tool", "2.0")
    code, out = run("index", *idx.cli("add", str(d), "--format", "json"))
    assert code == 0, out
    assert json.loads(out)["files"][0]["state"] == "admitted"
    code, out = run("index", *idx.cli("add", str(wheel(tmp_path / "x", "numpy", "9.9"))))
    assert code == 4 and "internal namespace" in out
    code, out = run("index", *idx.cli("list", "acme-tool", "--format", "json"))
    assert json.loads(out)["files"][0]["origin"] == "internal"


def test_uv_installs_with_only_an_index_url(make_index, tmp_path):
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed (pip install uv)")
    idx = make_index()
    venv = tmp_path / "venv"
    env = client_env(tmp_path)
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], env=env, check=True,
                   capture_output=True, timeout=120)
    r = subprocess.run([uv, "pip", "install", "--python", str(venv / "bin" / "python"),
                        "--index-url", authed(idx.url, idx.read_token), "app"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    listed = subprocess.run([uv, "pip", "list", "--python", str(venv / "bin" / "python")],
                            env=env, capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"libc\s+1\.0", listed) and re.search(r"app\s+1\.0", listed)
    idx.flush()
    assert any("uv/" in e.detail for e in idx.store.audit(action="pkg-download"))
