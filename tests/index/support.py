"""Helpers for the package-index tests: distributions built in tmp dirs, a pypiserver
upstream behind a loopback proxy (tampering, outages, request log), the index server."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from corpus.models import free_port

# ----------------------------------------------------------------------------- builders


def _record(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def metadata(name: str, version: str, requires: Iterable[str] = (),
             requires_python: str | None = None, mv: str = "2.1") -> str:
    lines = [f"Metadata-Version: {mv}", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    import re

    extras = sorted({m for r in requires for m in re.findall(r"extra == '([^']+)'", r)})
    lines += [f"Provides-Extra: {e}" for e in extras]
    return "\n".join(lines) + "\n\n"


def wheel(directory: Path, name: str, version: str = "1.0",
          files: dict[str, str] | None = None, requires: Iterable[str] = (),
          requires_python: str | None = None, mtime: float | None = None) -> Path:
    """A valid pure-Python wheel (importable module ``<name>``), written with zipfile."""
    mod = name.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    contents = {k: v.encode() for k, v in (files or {
        f"{mod}/__init__.py": f"__version__ = {version!r}\n"}).items()}
    contents[f"{dist}/METADATA"] = metadata(name, version, requires, requires_python).encode()
    contents[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: tests\n"
                                 b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    rec = [_record(k, v) for k, v in contents.items()] + [f"{dist}/RECORD,,"]
    contents[f"{dist}/RECORD"] = ("\n".join(rec) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in contents.items():
            zf.writestr(k, v)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def sdist(directory: Path, name: str, version: str, files: dict[str, str],
          requires: Iterable[str] = (), mtime: float | None = None) -> Path:
    top = f"{name.replace('-', '_')}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{top}.tar.gz"
    members = {"PKG-INFO": metadata(name, version, requires, mv="2.2"), **files}
    with tarfile.open(path, "w:gz") as tf:
        for k, v in members.items():
            data = v.encode()
            info = tarfile.TarInfo(f"{top}/{k}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


OLD = time.time() - 60 * 86400  # two months ago: older than any minimum age in the tests

# ----------------------------------------------------------------------------- upstream


def start_pypiserver(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1",
         "--disable-fallback", "--backend", "simple-dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pypiserver did not start")


@dataclass
class Proxy:
    """Loopback proxy in front of pypiserver: ``tamper`` names files whose bytes it alters
    (a compromised CDN), ``down`` makes every request fail (an outage), ``paths`` logs
    what the index asked the upstream."""

    target: int
    tamper: set[str] = field(default_factory=set)
    down: bool = False
    paths: list[str] = field(default_factory=list)
    url: str = ""
    server: ThreadingHTTPServer | None = None

    def start(self) -> Proxy:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def _do(self, method: str) -> None:
                state.paths.append(self.path)
                if state.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", state.target, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "range", "user-agent")}
                conn.request(method, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                name = self.path.rsplit("/", 1)[-1].split("#", 1)[0]
                if name in state.tamper and body:
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(body)
                conn.close()

            def do_GET(self) -> None:
                self._do("GET")

            def do_HEAD(self) -> None:
                self._do("HEAD")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# ----------------------------------------------------------------------------- clients


def client_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1", "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp / "uv-cache"),
                "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


def pip_install(tmp: Path, index: str, *args: str) -> subprocess.CompletedProcess[str]:
    target = tmp / f"target-{time.monotonic_ns()}"
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--index-url", index,
         "--target", str(target), *args], env=client_env(tmp), capture_output=True,
        text=True, timeout=300)


def installed(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def authed(url: str, token: str) -> str:
    return url.replace("http://", f"http://__token__:{token}@", 1)
