"""pip installs of ~20 real packages, straight from pypiserver and through `mlwarden index
serve` (pulling through from that pypiserver), in the same run, warm and cold.

    python benchmarks/index_vs_pypiserver.py [--rounds 3] [--cache DIR]

The packages are downloaded once with `pip download` into a cache directory outside git
(default ~/.cache/mlwarden-bench/index-packages; PyPI is needed only for that first run)
and served by pypiserver on loopback. Every install is a fresh virtual environment (made
before the clock starts) with `pip install --no-cache-dir`, so pip's own cache never hides
a download:

- direct: pip -> pypiserver;
- index cold: pip -> a fresh index store: every file is pulled through, sha256-checked
  against pypiserver's published hash, inspected, decided and logged before pip gets it;
- index warm: pip -> the same index again: everything already admitted.

Prints medians, the warm ratio (target <= 1.2x direct) and, for the cold install, the time
the index spent fetching and inspecting. The machine may be shared: rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["requests", "flask", "attrs", "six", "python-dateutil", "packaging", "pyparsing",
            "tomli", "iniconfig", "pluggy", "typing-extensions", "colorama"]
DEFAULT_CACHE = Path.home() / ".cache" / "mlwarden-bench" / "index-packages"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("server exited during start-up") from None
            time.sleep(0.05)
    raise SystemExit("server did not start")


def ensure_cache(cache: Path) -> None:
    if cache.is_dir() and len(list(cache.glob("*.whl"))) >= len(PACKAGES):
        return
    cache.mkdir(parents=True, exist_ok=True)
    print(f"downloading {len(PACKAGES)} packages and their dependencies into {cache} (once)")
    subprocess.run([sys.executable, "-m", "pip", "download", "--only-binary", ":all:",
                    "--dest", str(cache), *PACKAGES], check=True)


def client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "VIRTUAL_ENV", "MLWARDEN_TEST"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    return env


def install(tmp: Path, index: str) -> float:
    venv = tmp / f"venv-{time.monotonic_ns()}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
           "--no-cache-dir", "--quiet", "--index-url", index, *PACKAGES]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=client_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"pip install via {index} failed:\n{proc.stdout}\n{proc.stderr}")
    shutil.rmtree(venv, ignore_errors=True)
    return elapsed


def start_index(tmp: Path, upstream: str) -> tuple[subprocess.Popen[str], str, Path]:
    store = tmp / f"store-{time.monotonic_ns()}"
    policy = tmp / "policy.toml"
    # Downloaded just now, so pypiserver's Last-Modified is fresh: no minimum age here.
    # The default inspection policy: every file of these packages must be admitted as is.
    policy.write_text(f'[upstream]\nurl = "{upstream}"\n[releases]\nminimum-age = "0"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLWARDEN_TEST")}
    env["MLWARDEN_LOG_KEY"] = str(tmp / "log-key.pem")
    env["MLWARDEN_LOG_CHECKPOINT"] = str(tmp / "checkpoint.json")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlwarden", "index", "serve", "--store", str(store),
         "--policy", str(policy), "--port", "0", "--allow-anonymous", "--log-level",
         "warning", "--confusion-every", "0"], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/simple/)", line)
        if m:
            return proc, m.group(1), store
        if not line and proc.poll() is not None:
            raise SystemExit("mlwarden index serve did not start")


def admission_times(store: Path) -> tuple[int, float, float, list[str]]:
    from mlwarden.index.model import State
    from mlwarden.index.storage import IndexStorage
    from mlwarden.store import Store

    s = Store.open(store)
    try:
        files = IndexStorage(s).all_files()
    finally:
        s.close()
    not_admitted = [f"{f.filename}: {f.state.value}" for f in files
                    if f.state is not State.ADMITTED]
    return (len(files), sum(f.fetch_seconds for f in files),
            sum(f.inspect_seconds for f in files), not_admitted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    ensure_cache(args.cache)
    tmp = Path(tempfile.mkdtemp(prefix="mlw-index-bench-"))
    port = free_port()
    pypi = subprocess.Popen([sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i",
                             "127.0.0.1", "--disable-fallback", str(args.cache)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen[str]] = []
    try:
        wait_port(port, pypi)
        direct_url = f"http://127.0.0.1:{port}/simple/"
        files = len(list(args.cache.iterdir()))
        print(f"{len(PACKAGES)} requested packages, {files} files in the upstream; "
              f"{args.rounds} rounds")
        direct_cold = install(tmp, direct_url)  # pypiserver's first listing of the directory
        cold: list[float] = []
        warm: list[float] = []
        direct: list[float] = []
        fetch = inspect = 0.0
        admitted = 0
        for r in range(args.rounds):
            proc, url, store = start_index(tmp, direct_url)
            procs.append(proc)
            cold.append(install(tmp, url))
            n, f, i, bad = admission_times(store)
            if bad:
                raise SystemExit("files not admitted by the default policy: " + ", ".join(bad))
            if r == 0:
                admitted, fetch, inspect = n, f, i
            for _ in range(2):
                direct.append(install(tmp, direct_url))
                warm.append(install(tmp, url))
            proc.terminate()
            proc.wait(timeout=30)
        d, w, c = (statistics.median(x) for x in (direct, warm, cold))
        print(f"direct from pypiserver (first run)   {direct_cold:7.2f} s")
        print(f"direct from pypiserver (median)      {d:7.2f} s   [{len(direct)} installs]")
        print(f"through the index, warm (median)     {w:7.2f} s   ratio {w / d:.2f}x "
              f"(target <= 1.2x)")
        print(f"through the index, cold (median)     {c:7.2f} s   ratio {c / d:.2f}x")
        print(f"  cold admission of {admitted} files (first round): fetching "
              f"{fetch:.2f} s, inspecting {inspect:.2f} s (sums over files; admissions run "
              f"as pip asks for each file)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        pypi.terminate()
        pypi.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
