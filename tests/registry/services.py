"""Real services on loopback for the registry tests: moto's standalone S3 server, nginx,
and ``mlwarden serve`` processes. Every port is chosen by the kernel (port 0) and read back."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                  else None)
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None,
              timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Moto:
    proc: subprocess.Popen[bytes]
    endpoint: str

    def bucket(self) -> str:
        import boto3

        name = f"mlwt-{uuid.uuid4().hex[:20]}"
        boto3.client("s3", endpoint_url=self.endpoint, **_creds()).create_bucket(Bucket=name)
        return name


def _creds() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing",
            "region_name": "us-east-1"}


def start_moto(log: Path) -> Moto:
    """moto's standalone server on a kernel-chosen port (it prints the URL it bound)."""
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable) + os.pathsep +
                       os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    out = open(log, "w+b")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", "0"], stdout=out,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(rb"Running on (http://127\.0\.0\.1:\d+)", log.read_bytes())
        if m:
            endpoint = m.group(1).decode()
            wait_port(int(endpoint.rsplit(":", 1)[1]), proc)
            return Moto(proc, endpoint)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"moto_server did not start: {log.read_text(errors='replace')}")


NGINX_LB = """worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {tmp}/access.log;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream registry {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_connect_timeout 2s;
      {extra}
    }}
    {locations}
  }}
}}
"""


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    conf: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.proc, signal.SIGQUIT)


def start_nginx(tmp: Path, config: str) -> Nginx:
    """nginx with a generated config; ``{port}`` in it is filled with a free port (nginx
    cannot report a port 0 bind, so a bind race is retried)."""
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    tmp.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = tmp / "nginx.conf"
        text = config.replace("{port}", str(port)).replace("{tmp}", str(tmp))
        if os.geteuid() == 0:
            text = "user root;\n" + text
        conf.write_text(text)
        proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e",
                                 str(tmp / "error.log"), "-g", "daemon off;"],
                                stderr=subprocess.PIPE)
        try:
            wait_port(port, proc, timeout=10)
            return Nginx(proc, port, conf)
        except RuntimeError:
            stop(proc)
            err = (tmp / "error.log").read_text(errors="replace") \
                if (tmp / "error.log").exists() else ""
            if "Address already in use" not in err:
                raise RuntimeError(f"nginx did not start: {err}") from None
    raise RuntimeError("nginx could not bind a port")


def lb_config(upstreams: Sequence[int], extra: str = "", locations: str = "") -> str:
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;"
                        for p in upstreams)
    return (NGINX_LB.replace("{servers}", servers).replace("{extra}", extra)
            .replace("{locations}", locations).replace("{{", "{").replace("}}", "}"))


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.proc, sig)


def start_replica(args: Sequence[str], log: Path, env: dict[str, str] | None = None,
                  timeout: float = 60) -> Replica:
    """``mlwarden serve --port 0 ARGS``; the port is read from its start-up line."""
    out = open(log, "w+b")
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--port", "0",
                             "--log-level", "warning", *args], stdout=out,
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(rb"on http://127\.0\.0\.1:(\d+)", log.read_bytes())
        if m:
            port = int(m.group(1))
            wait_port(port, proc)
            return Replica(proc, port, log)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"mlwarden serve did not start: {log.read_text(errors='replace')}")
