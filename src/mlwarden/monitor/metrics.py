"""Prometheus metrics and a health endpoint for the monitor:

* ``/metrics``: ``mlwarden_monitor_alerts_total{rule}``, ``..._outstanding_changes``,
  ``..._files_watched``, ``..._last_full_check_timestamp_seconds``,
  ``..._check_duration_seconds``, ``..._webhook_failures_total``,
  ``..._baseline_valid``, ``..._up``;
* ``/healthz``: 200 while the deployment matches its approval, 503 with the outstanding
  changes otherwise (a Kubernetes readiness probe takes a tampered pod out of service).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        p = "mlwarden_monitor_"
        self.alerts = Counter(p + "alerts", "Alerts raised, by rule", ["rule"],
                              registry=self.registry)
        self.outstanding = Gauge(p + "outstanding_changes",
                                 "Changes not covered by the approved state",
                                 registry=self.registry)
        self.watched = Gauge(p + "files_watched", "Files under watch", registry=self.registry)
        self.last_full = Gauge(p + "last_full_check_timestamp_seconds",
                               "End of the last full re-hash", registry=self.registry)
        self.duration = Gauge(p + "check_duration_seconds", "Duration of the last check",
                              ["kind"], registry=self.registry)
        self.webhook_failures = Counter(p + "webhook_failures", "Undelivered webhook events",
                                        registry=self.registry)
        self.baseline_valid = Gauge(p + "baseline_valid",
                                    "1 when the approved BOMs verified", registry=self.registry)
        self.up = Gauge(p + "up", "1 while the monitor runs", registry=self.registry)
        self.up.set(1)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data


def serve(metrics: Metrics, health: Callable[[], tuple[bool, list[dict[str, Any]]]],
          host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, code, ctype = metrics.render(), 200, \
                    "text/plain; version=0.0.4; charset=utf-8"
            elif self.path in ("/healthz", "/readyz"):
                ok, changes = health()
                body = json.dumps({"ok": ok, "outstanding": changes}).encode()
                code, ctype = (200 if ok else 503), "application/json"
            else:
                body, code, ctype = b"not found\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
