"""Helpers shared by the registry tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from corpus.models import free_port
from corpus.servers import run_uvicorn
from mlwarden.registry.app import Settings, create_app
from mlwarden.registry.server import ServerLimits, make_config
from mlwarden.store import Store

HERE = Path(__file__).parent


@dataclass
class LiveServer:
    url: str
    port: int
    store: Store
    app: object
    thread: threading.Thread
    server: object

    def flush_audit(self) -> None:
        self.app.state.audit.flush()  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(15)


def start_server(store: Store, settings: Settings | None = None,
                 limits: ServerLimits | None = None) -> LiveServer:
    port = free_port()
    app = create_app(store, settings or Settings())
    config = make_config(app, "127.0.0.1", port, limits, log_level="warning")
    server, thread = run_uvicorn(config, "registry")
    return LiveServer(f"http://127.0.0.1:{port}", port, store, app, thread, server)


def client_env(tmp: Path, endpoint: str, token: str | None,
               offline: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE", "TRANSFORMERS_"))}
    env.update({
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DISABLE_SAFETENSORS_CONVERSION": "1",
        "DO_NOT_TRACK": "1",
        # Anything that tries to leave loopback hits a closed port and fails fast.
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    if token:
        env["HF_TOKEN"] = token
    else:  # never send a token found on this machine
        env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def run_client(script: str, env: dict[str, str], *args: str,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HERE / script), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
