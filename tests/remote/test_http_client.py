"""The lean HTTP client of hf:// scans: the same token as huggingface_hub, proxies honoured,
keep-alive, bodies bounded."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

HEADERS_CHILD = """
import json
from huggingface_hub.utils import build_hf_headers
from mlwarden.scan.sources.http import hf_headers
print(json.dumps([hf_headers().get("authorization"), build_hf_headers().get("authorization")]))
"""


@pytest.mark.parametrize("case", ["none", "env", "file", "file+disabled", "env+disabled"])
def test_token_is_the_one_huggingface_hub_sends(tmp_path: Path, case: str) -> None:
    import json

    env = {"PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    (tmp_path / "hf").mkdir()
    if "env" in case:
        env["HF_TOKEN"] = "hf_fromenv"
    if "file" in case:
        (tmp_path / "hf" / "token").write_text("hf_fromfile\n")
    if "disabled" in case:
        env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    out = subprocess.run([sys.executable, "-c", HEADERS_CHILD], env=env, capture_output=True,
                         text=True, check=True).stdout
    ours, theirs = json.loads(out)
    assert ours == theirs
    assert (ours is not None) == (case in ("env", "file"))


class _Recorder(http.server.BaseHTTPRequestHandler):
    """An origin server and a forward proxy in one: records the request line it got."""
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[str]] = []
    peers: ClassVar[set[tuple[str, int]]] = set()

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        type(self).peers.add(self.client_address)
        body = b"0123456789" * 100
        rng = self.headers.get("Range")
        status = 200
        if rng:
            a, b = rng.removeprefix("bytes=").split("-")
            body, status = body[int(a):int(b) + 1], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.peers = set()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_ranges_reuse_one_connection_and_bodies_are_bounded(server: str) -> None:
    from mlwarden.scan.sources import http

    http.close_all()
    for i in range(5):
        r = http.request("GET", f"{server}/f", {"Range": f"bytes={i * 10}-{i * 10 + 9}"}, 10)
        assert r.status_code == 206 and r.body == b"0123456789"
    assert len(_Recorder.peers) == 1  # keep-alive: one TCP connection for five ranges
    # A server that ignores Range: only what was asked for is returned; the rest is not read
    r = http.request("GET", f"{server}/f", {}, 25)
    assert r.status_code == 200 and r.body == b"0123456789" * 2 + b"01234"
    r = http.request("GET", f"{server}/f", {"Range": "bytes=0-9"}, 10)
    assert r.body == b"0123456789"


def test_http_proxy_from_the_environment_is_used(server: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from mlwarden.scan.sources import http

    http.close_all()
    monkeypatch.setenv("http_proxy", server)  # the recorder acts as the proxy
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert urllib.request.getproxies().get("http") == server
    r = http.request("GET", "http://models.example.invalid/api/x", {}, None)
    assert r.status_code == 200
    # Through a proxy the request line carries the absolute URL.
    assert _Recorder.seen[-1] == "http://models.example.invalid/api/x"
    http.close_all()
    monkeypatch.setenv("no_proxy", "models.example.invalid")
    with pytest.raises(http.ConnectError):  # bypassed: tries the (unresolvable) host itself
        http.request("GET", "http://models.example.invalid/api/x", {}, None)
    http.close_all()
