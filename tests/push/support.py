"""Helpers for the push and console tests: a live registry with the write API, tokens,
and real clients in subprocesses, with or without hf_xet importable."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.models import free_port
from corpus.servers import run_uvicorn
from mlwarden.registry.api import WriteSettings, routes
from mlwarden.registry.app import Settings, create_app
from mlwarden.registry.server import make_config
from mlwarden.store import Store
from mlwarden.store.push import PushStore
from registry.support import client_env

HERE = Path(__file__).parent
CLIENT = HERE / "push_client.py"


@dataclass
class PushServer:
    url: str
    store: Store
    app: Any
    thread: threading.Thread
    server: Any

    def flush_audit(self) -> None:
        self.app.state.audit.flush()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def token(self, name: str, *scopes: str, owner: str | None = None) -> str:
        info, text = self.store.create_token(name, list(scopes))
        if owner:
            PushStore.open(self.store).set_owner(info.id, owner)
        return text


def start(store: Store, write: WriteSettings | None = None,
          settings: Settings | None = None) -> PushServer:
    port = free_port()
    app = create_app(store, settings or Settings(), routes=routes(store, write or WriteSettings()))
    server, thread = run_uvicorn(make_config(app, "127.0.0.1", port, log_level="warning"),
                                 "registry")
    return PushServer(f"http://127.0.0.1:{port}", store, app, thread, server)


def site_without(tmp: Path, hidden: tuple[str, ...] = ("hf_xet",)) -> Path:
    """A copy of this interpreter's site-packages (symlinks) without ``hidden``
    distributions: what a machine without them installed looks like to the client."""
    out = tmp / "site-no-xet"
    if out.exists():
        return out
    out.mkdir(parents=True)
    for sp in site.getsitepackages():
        for entry in Path(sp).iterdir():
            name = entry.name.lower()
            if any(name == h or name.startswith(f"{h}-") for h in hidden):
                continue
            target = out / entry.name
            if not target.exists():
                target.symlink_to(entry)
    return out


def run_client(tmp: Path, url: str, token: str | None, steps: list[dict[str, Any]], *,
               xet: bool = True, timeout: float = 300,
               extra_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run ``steps`` (see push_client.py) in a fresh interpreter pointed at ``url``."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = client_env(tmp, url, token)
    env.update(extra_env or {})
    if xet:
        cmd = [sys.executable, str(CLIENT)]
    else:
        sitedir = site_without(tmp)
        boot = ("import site, sys, runpy; site.addsitedir(sys.argv[1]); "
                "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")
        cmd = [sys.executable, "-S", "-c", boot, str(sitedir), str(CLIENT)]
        env.pop("PYTHONPATH", None)
    proc = subprocess.run([*cmd, json.dumps(steps)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:], proc.stderr[-6000:])
    out: list[dict[str, Any]] = json.loads(lines[-1][len("RESULT "):])
    for r in out:
        r["stderr"] = proc.stderr
    return out


def os_environ_without_hf() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HF_")}


class ConsoleClient:
    """A browser stand-in for HTTP-level console tests: cookies, CSRF fields, redirects."""

    def __init__(self, url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=60)

    @staticmethod
    def field(html: str, name: str = "csrf") -> str:
        import re

        m = re.search(rf'name="{name}" value="([^"]*)"', html)
        assert m, f"no {name} field in page"
        return m.group(1)

    def login(self, token: str) -> Any:
        page = self.http.get("/ui/login")
        return self.http.post("/ui/login", data={"csrf": self.field(page.text), "token": token,
                                                 "next": "/ui/"})

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(path, **kw)

    def review(self, repo: str, commit: str, decision: str, note: str = "") -> Any:
        page = self.http.get(f"/ui/repos/{repo}/commits/{commit}")
        return self.http.post(f"/ui/repos/{repo}/commits/{commit}/review",
                              data={"csrf": self.field(page.text), "decision": decision,
                                    "note": note})
