"""Helpers for the airlock tests: a tiny real model, live servers on loopback (the real
registry, and a fake Hub that can lie), and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.models import free_port
from corpus.servers import run_uvicorn

HERE = Path(__file__).parent


@dataclass
class Live:
    url: str
    server: Any
    thread: threading.Thread
    app: Any

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_app(app: Any) -> Live:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on", access_log=False)
    server, thread = run_uvicorn(config)
    return Live(f"http://127.0.0.1:{port}", server, thread, app)


def serve_registry(store: Any) -> Live:
    """The real `mlwarden serve` application over a store, anonymous reads allowed."""
    from mlwarden.registry.app import Settings, create_app

    return serve_app(create_app(store, Settings(allow_anonymous=True)))


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Subprocess environment that cannot reach the internet or a real HF token."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_", "MLWARDEN_"))}
    env.update({
        "HF_HOME": str(tmp / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "DISABLE_SAFETENSORS_CONVERSION": "1",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "MLWARDEN_SCAN_CACHE": str(tmp / "scan-cache"),
    })
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlwarden", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def store_state(store_path: Path) -> dict[str, Any]:
    """What `serve` would show: visible repos, their refs and approved commits."""
    from mlwarden.store import Store

    s = Store.open(store_path, create=False)
    try:
        return {r.id: {"refs": [(x.name, x.kind, x.commit) for x in s.refs(r.id)],
                       "approved": sorted(c.id for c in s.commits(r.id) if c.approved)}
                for r in s.repos()}
    finally:
        s.close()
