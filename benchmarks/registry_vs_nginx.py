"""Download throughput of `mlwarden serve` against nginx serving the same bytes, same run.

    python benchmarks/registry_vs_nginx.py [--size-mib 1024] [--clients 64]
        [--concurrent-size-mib 32] [--repeat 5] [--json FILE]

Needs nginx and curl (Debian: `apt-get install -y nginx curl`); installs nothing. One
store (local blobs, SQLite), one 1 GiB file and one 32 MiB file; every server sends the
same blob files from the same page cache:

* nginx            the peer: nginx (sendfile, one worker per core) serving blobs/ directly;
* workers          `mlwarden serve --workers 2` alone: token check, access cache, audit,
                   sendfile(2) zero-copy from each worker;
* x-accel          nginx in front of `mlwarden serve --delivery x-accel`: the registry
                   checks the token and audits, nginx sends the file (X-Accel-Redirect);
* single           `mlwarden serve` with one worker (for reference, no target).

Downloads use curl so the client is not the bottleneck. Configurations are measured in
rotating order, several rounds each. Background load on a shared machine can only slow a
round down, so the targets are judged on each configuration's best round (as timeit
uses the fastest run); the medians are printed beside them. Ratios are against nginx;
targets: single download >= 0.95x (x-accel) and >= 0.9x (workers); 64 clients >= 0.9x
(x-accel) and >= 0.75x (workers). Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlwarden.store import Store

MiB = 1 << 20
TARGETS = {("single", "x-accel"): 0.95, ("single", "workers"): 0.9,
           ("concurrent", "x-accel"): 0.9, ("concurrent", "workers"): 0.75}


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def single(url: str, headers: list[str], expected: int) -> float:
    """MB/s of one client downloading the whole file."""
    t = time.perf_counter()
    out = subprocess.run(curl(url, headers), capture_output=True, text=True)
    if out.returncode != 0 or int(out.stdout or 0) != expected:
        raise SystemExit(f"download of {url} failed (curl status {out.returncode})")
    return expected / (time.perf_counter() - t) / 1e6


def concurrent(url: str, headers: list[str], clients: int, expected: int) -> float:
    """Aggregate MB/s of N clients downloading at once."""
    t = time.perf_counter()
    procs = [subprocess.Popen(curl(url, headers), stdout=subprocess.PIPE, text=True)
             for _ in range(clients)]
    total = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0 or int(out or 0) != expected:
            raise SystemExit(f"a concurrent download failed (curl status {p.returncode})")
        total += int(out)
    return total / (time.perf_counter() - t) / 1e6


NGINX_HEAD = """{user}worker_processes auto;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; keepalive_timeout 5;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  types {{ }} default_type application/octet-stream;
"""

PEER = NGINX_HEAD + """  server {{
    listen 127.0.0.1:{port};
    location /blobs/ {{ alias {blobs}/; }}
  }}
}}
"""

# The configuration docs/registry.md recommends in front of --delivery x-accel.
FRONT = NGINX_HEAD + """  upstream registry {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://registry;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    location /_mlwarden/blobs/ {{
      internal;
      alias {blobs}/;
      etag off;
      add_header ETag $upstream_http_etag always;
      add_header X-Repo-Commit $upstream_http_x_repo_commit always;
      add_header X-Linked-Etag $upstream_http_x_linked_etag always;
      add_header X-Linked-Size $upstream_http_x_linked_size always;
    }}
  }}
}}
"""


def start_nginx(tmp: Path, template: str, **kw: object) -> tuple[subprocess.Popen[bytes], int]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (tmp / "nginx.conf").write_text(template.format(
        user="user root;\n" if os.geteuid() == 0 else "", tmp=tmp, port=port, **kw))
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(tmp),
                             "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log"),
                             "-g", "daemon off;"])
    wait_port(port, proc)
    return proc, port


def start_mlwarden(store: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", "serve", "--store", str(store),
                             "--port", str(port), "--log-level", "warning", *args])
    wait_port(port, proc)
    return proc, port


def measure(names: list[str], run: Callable[[str], float],
            repeat: int) -> dict[str, list[float]]:
    """Every round's MB/s per configuration, measured in rotating order."""
    got: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeat):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            got[n].append(run(n))
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="large file size")
    ap.add_argument("--clients", type=int, default=64, help="concurrent clients")
    ap.add_argument("--concurrent-size-mib", type=int, default=32,
                    help="file each concurrent client downloads")
    ap.add_argument("--repeat", type=int, default=5, help="measurements per configuration")
    ap.add_argument("--workers", type=int, default=2, help="workers of the 'workers' server")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    for tool in ("nginx", "curl"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed: apt-get install -y nginx curl")

    tmp = Path(tempfile.mkdtemp(prefix="mlwarden-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        src = tmp / "model"
        src.mkdir()
        print(f"creating {args.size_mib} MiB and {args.concurrent_size_mib} MiB files ...",
              flush=True)
        write_file(src / "big.bin", args.size_mib * MiB)
        write_file(src / "small.bin", args.concurrent_size_mib * MiB)
        store = Store.open(tmp / "store")
        commit = store.commit_directory(src, "bench/model", approve=True, author="bench",
                                        message="benchmark")
        files = {f.path: f for f in store.files("bench/model", commit.id)}
        _, token = store.create_token("bench", ["bench:read"])
        blobs = store.blobs.blob_root  # type: ignore[attr-defined]
        paths = {n: store.blobs.local_path(f.sha256) for n, f in files.items()}
        store.close()
        for p in paths.values():  # warm the page cache for every server alike
            subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)

        ng, ng_port = start_nginx(tmp / "nginx", PEER, blobs=blobs)
        w, w_port = start_mlwarden(tmp / "store", "--workers", str(args.workers))
        s1, s1_port = start_mlwarden(tmp / "store")
        x, x_port = start_mlwarden(tmp / "store", "--delivery", "x-accel",
                                   "--forwarded-allow-ips", "127.0.0.1")
        fr, fr_port = start_nginx(tmp / "front", FRONT, blobs=blobs, upstream=x_port)
        procs += [ng, w, s1, x, fr]
        auth = [f"Authorization: Bearer {token}"]

        def url(config: str, name: str) -> tuple[str, list[str]]:
            if config == "nginx":
                sha = files[name].sha256
                return f"http://127.0.0.1:{ng_port}/blobs/{sha[:2]}/{sha[2:]}", []
            port = {"workers": w_port, "single": s1_port, "x-accel": fr_port}[config]
            return f"http://127.0.0.1:{port}/bench/model/resolve/main/{name}", auth

        names = ["nginx", "workers", "x-accel", "single"]
        big, small = files["big.bin"].size, files["small.bin"].size
        print(f"single {args.size_mib} MiB download, {args.repeat} rounds ...", flush=True)
        one = measure(names, lambda n: single(*url(n, "big.bin"), big), args.repeat)
        print(f"{args.clients} clients x {args.concurrent_size_mib} MiB, "
              f"{max(3, args.repeat // 2)} rounds ...", flush=True)
        many = measure(names, lambda n: concurrent(*url(n, "small.bin"), args.clients, small),
                       max(3, args.repeat // 2))
        rows = [("single", f"single {args.size_mib} MiB download", one),
                ("concurrent", f"{args.clients} clients x {args.concurrent_size_mib} MiB", many)]
        print(f"\n{'benchmark':30} {'config':8} {'best MB/s':>10} {'x nginx':>8} "
              f"{'median':>8} {'x nginx':>8}  target (best)")
        ok = True
        report: dict[str, dict[str, list[float]]] = {}
        for key, label, res in rows:
            report[key] = res
            best = {n: max(v) for n, v in res.items()}
            med = {n: statistics.median(v) for n, v in res.items()}
            for n in names:
                ratio = best[n] / best["nginx"]
                target = TARGETS.get((key, n))
                mark = "" if target is None else (f">= {target}" +
                                                  (" ok" if ratio >= target else " MISS"))
                ok = ok and (target is None or ratio >= target)
                print(f"{label:30} {n:8} {best[n]:10.0f} {ratio:8.2f} {med[n]:8.0f} "
                      f"{med[n] / med['nginx']:8.2f}  {mark}")
        load = os.getloadavg()
        print(f"\nload average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
              f"on {os.cpu_count()} cores (a shared machine makes every figure noisy)")
        print(f"targets: {'all met' if ok else 'NOT all met'}")
        if args.json:
            Path(args.json).write_text(json.dumps({"mb_per_s": report, "load": load,
                                                   "targets_met": ok}, indent=2))
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
