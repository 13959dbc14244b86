"""Fixtures for the deps tests: package archives built in tmp dirs, loopback index/OSV
servers (a tiny JSON server and a real pypiserver). Nothing reaches the internet."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deps.deps_support import make_wheel

# ----------------------------------------------------------------------------- servers

@dataclass
class Loopback:
    """A JSON server: routes map (method, path) -> (status, body, delay_seconds)."""

    routes: dict[tuple[str, str], tuple[int, object, float]] = field(default_factory=dict)
    default: tuple[int, object, float] = (404, {"message": "Not Found"}, 0.0)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append((method, self.path, body))
            route = state.routes.get((method, self.path), state.default)
            status, payload, delay = route
            if callable(payload):
                payload = payload(body)
            if delay:
                time.sleep(delay)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                if status in (301, 302, 303, 307):
                    self.send_header("Location", str(payload))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pypiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real pypiserver on loopback serving one wheel (acme-internal), fallback disabled."""
    root = tmp_path_factory.mktemp("pypi")
    make_wheel(root, "acme-internal", {"acme_internal/__init__.py": "X = 1\n"})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1",
         "--disable-fallback", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("pypiserver did not start")
    try:
        yield f"http://127.0.0.1:{port}/simple"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


Writer = Callable[[str, str], Path]


@pytest.fixture
def project(tmp_path: Path) -> Writer:
    def write(rel: str, text: str) -> Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    return write
