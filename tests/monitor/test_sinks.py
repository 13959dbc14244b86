"""Alert delivery details: the webhook body's HMAC, journald's binary field encoding, and an
alert that could not be delivered is kept and sent after a restart (and not re-alerted)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save

from corpus.models import free_port
from corpus.pki import Pki, make_pki
from mlwarden.monitor.sinks import JournaldSink, WebhookSink
from monitor.support import Receiver, env


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("sink-pki"))


def test_webhook_signs_the_body() -> None:
    got: list[tuple[bytes, str]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((body, self.headers.get("X-Mlwarden-Signature", "")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/", secret=b"s3cret")
        sink.send({"event": "alert", "rule": "monitor-pth-added"})
        assert sink.flush(10)
        sink.close()
    finally:
        server.shutdown()
    (body, sig), = got
    assert json.loads(body)["rule"] == "monitor-pth-added"
    assert sig == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()


def test_journald_binary_fields() -> None:
    data = JournaldSink.encode({"MESSAGE": "two\nlines", "MLWARDEN_RULE": "r"})
    assert data == (b"MESSAGE\n" + struct.pack("<Q", 9) + b"two\nlines\n"
                    + b"MLWARDEN_RULE=r\n")


def test_undelivered_alerts_survive_a_restart(tmp_path: Path, keys: Pki) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.safetensors").write_bytes(save({"w": np.zeros(4, np.float32)}))
    bom = tmp_path / "bom.json"
    res = subprocess.run([sys.executable, "-m", "mlwarden", "sbom", str(model), "-o", str(bom),
                          "--sign", "--key", str(keys.key)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    (model / "added.pth").write_text("import os\n")

    def once(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlwarden", "monitor", "--once", "--sbom",
                               str(bom), f"{bom}.sig", str(model), "--public-key",
                               str(keys.pub), "--state-dir", str(tmp_path / "state"),
                               "--webhook", url], env=env(), capture_output=True, text=True,
                              timeout=120)

    t0 = time.monotonic()
    dead = once(f"http://127.0.0.1:{free_port()}/hook")  # nobody listens
    assert dead.returncode == 1 and "monitor-file-added" in dead.stderr
    assert time.monotonic() - t0 < 30
    state = json.loads(next((tmp_path / "state").glob("monitor-*.json")).read_text())
    assert [e["rule"] for e in state["pending"]] == ["monitor-file-added"]
    receiver = Receiver()
    try:
        live = once(receiver.url)
        assert live.returncode == 1  # still outstanding
        assert '"event":"alert"' not in live.stderr  # not alerted again...
        _, ev = receiver.wait(lambda e: e.get("event") == "alert")  # ...but delivered now
        assert ev["path"].endswith("added.pth")
    finally:
        receiver.close()
    state = json.loads(next((tmp_path / "state").glob("monitor-*.json")).read_text())
    assert state["pending"] == []
    assert os.path.exists(model / "added.pth")
