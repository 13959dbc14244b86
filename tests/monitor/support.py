"""A running `mlwarden monitor` and a loopback webhook receiver, for the monitor tests and
the end-to-end chain."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP", "HTTPS"))}
    e["NO_PROXY"] = "127.0.0.1,localhost"
    return e


class Receiver:
    """A loopback webhook receiver: records every JSON body with its arrival time."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.events.append((time.monotonic(), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def alerts(self) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e.get("event") == "alert"]

    def wait(self, pred: Any, timeout: float = 10.0) -> tuple[float, dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, e in list(self.events):
                if pred(e):
                    return t, e
            time.sleep(0.05)
        raise AssertionError(f"no matching webhook event; got {self.events}")

    def close(self) -> None:
        self.server.shutdown()


@dataclass
class Running:
    proc: subprocess.Popen[str]
    log: Path
    metrics: int | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)


def start_monitor(args: list[str | Path], logs: Path) -> Running:
    """Start `mlwarden monitor ARGS`; return once it has checked everything and watches."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"monitor-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([sys.executable, "-m", "mlwarden", "monitor", *map(str, args)],
                            env=env(), stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), text=True)
    run = Running(proc, log)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        evs = run.events()
        for e in evs:
            if e.get("event") == "metrics":
                run.metrics = int(e["port"])
        if any(e.get("event") == "started" for e in evs):
            return run
        if proc.poll() is not None:
            raise AssertionError(f"monitor exited {proc.returncode}: {log.read_text()}")
        time.sleep(0.05)
    run.stop()
    raise AssertionError(f"monitor did not start: {log.read_text()}")
