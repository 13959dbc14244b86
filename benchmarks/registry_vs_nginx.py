"""Download throughput of `mlwarden serve` against nginx serving the same bytes.

    python benchmarks/registry_vs_nginx.py [--size-mib 1024] [--clients 64]

Needs nginx and curl on PATH (Debian: `apt-get install -y nginx curl`); installs nothing.
Both servers run on loopback in the same run and serve the same blob file from the store
(nginx directly from blobs/, mlwarden through the resolve endpoint with a bearer token,
access checks, audit logging and Range support). Downloads use curl so that the client
is not the bottleneck. Prints MB/s and the mlwarden/nginx ratio (target >= 0.5 for the
single large download).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlwarden.store import Store

MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on port {port}")


def write_file(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        for i in range(size // MiB):
            fh.write(block[i % 251:] + block[:i % 251])  # distinct blocks, cheap to make


def curl(url: str, headers: list[str]) -> list[str]:
    cmd = ["curl", "-s", "-f", "-o", "/dev/null", "-w", "%{size_download}", url]
    for h in headers:
        cmd += ["-H", h]
    return cmd


def single(url: str, headers: list[str], repeat: int) -> float:
    """Median MB/s of one client downloading the whole file."""
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run(curl(url, headers), capture_output=True, text=True, check=True)
        rates.append(int(out.stdout) / (time.perf_counter() - t) / 1e6)
    return statistics.median(rates)


def concurrent(url: str, headers: list[str], clients: int, expected: int) -> float:
    """Aggregate MB/s of N clients downloading at once."""
    t = time.perf_counter()
    procs = [subprocess.Popen(curl(url, headers), stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    total = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0 or int(out) != expected:
            raise SystemExit(f"a concurrent download failed (curl status {p.returncode})")
        total += int(out)
    return total / (time.perf_counter() - t) / 1e6


NGINX_CONF = """{user}worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_timeout 5;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  types {{ }} default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{port};
    location /blobs/ {{ alias {blobs}/; }}
  }}
}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="large file size")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients")
    ap.add_argument("--concurrent-size-mib", type=int, default=32,
                    help="file each concurrent client downloads")
    ap.add_argument("--repeat", type=int, default=3, help="single-download repetitions")
    args = ap.parse_args()
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH: apt-get install -y nginx curl")

    tmp = Path(tempfile.mkdtemp(prefix="mlwarden-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        src = tmp / "model"
        src.mkdir()
        print(f"creating {args.size_mib} MiB and {args.concurrent_size_mib} MiB files ...")
        write_file(src / "big.bin", args.size_mib * MiB)
        write_file(src / "small.bin", args.concurrent_size_mib * MiB)
        store = Store.open(tmp / "store")
        commit = store.commit_directory(src, "bench/model", approve=True, author="bench",
                                        message="benchmark")
        files = {f.path: f for f in store.files("bench/model", commit.id)}
        _, token = store.create_token("bench", ["bench:read"])
        store.close()
        for f in files.values():  # warm the page cache for both servers alike
            subprocess.run(["cat", str(store.blobs.local_path(f.sha256))],
                           stdout=subprocess.DEVNULL, check=True)

        ng_port, mw_port = free_port(), free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "", tmp=tmp, port=ng_port,
            blobs=tmp / "store" / "blobs" / "sha256"))
        procs.append(subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                                       "-g", "daemon off;"]))
        wait_port(ng_port, procs[-1])
        procs.append(subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--store",
                                       str(tmp / "store"), "--port", str(mw_port),
                                       "--log-level", "warning"]))
        wait_port(mw_port, procs[-1])

        def urls(name: str) -> tuple[str, str]:
            sha = files[name].sha256
            return (f"http://127.0.0.1:{ng_port}/blobs/{sha[:2]}/{sha[2:]}",
                    f"http://127.0.0.1:{mw_port}/bench/model/resolve/main/{name}")

        auth = [f"Authorization: Bearer {token}"]
        ng_big, mw_big = urls("big.bin")
        ng_small, mw_small = urls("small.bin")
        small_size = files["small.bin"].size
        rows = []
        ng = single(ng_big, [], args.repeat)
        mw = single(mw_big, auth, args.repeat)
        rows.append((f"single {args.size_mib} MiB download", ng, mw))
        ng = concurrent(ng_small, [], args.clients, small_size)
        mw = concurrent(mw_small, auth, args.clients, small_size)
        rows.append((f"{args.clients} clients x {args.concurrent_size_mib} MiB", ng, mw))
        print(f"\n{'benchmark':34} {'nginx MB/s':>11} {'mlwarden MB/s':>14} {'ratio':>6}")
        for name, n, m in rows:
            print(f"{name:34} {n:11.0f} {m:14.0f} {m / n:6.2f}")
        ok = rows[0][2] / rows[0][1] >= 0.5
        print(f"\ntarget: single-download ratio >= 0.5: {'met' if ok else 'NOT met'}")
        sys.exit(0 if ok else 1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
