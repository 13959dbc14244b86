"""Prometheus metrics: requests, bytes, denials, latency, downloads in flight.

Every request is observed once, from the audit entry it produces, so the metrics and the
audit log cannot disagree. Labels are bounded sets (action, status, reason): repository
names and clients belong in the audit log, not in a time series.

With ``serve --workers N`` each worker writes to ``PROMETHEUS_MULTIPROC_DIR`` (set by the
supervisor before any worker starts) and ``/metrics`` on any worker aggregates them all.
"""

from __future__ import annotations

import os

from mlwarden.store.model import AuditEntry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
            300, 1800)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # Our own registry: several apps in one process (tests) must not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("mlwarden_registry_requests_total",
                                "Requests answered, by action and status.",
                                ["action", "status"], registry=r)
        self.bytes = Counter("mlwarden_registry_response_bytes_total",
                             "File bytes handed to connections by this process (redirected "
                             "and X-Accel-Redirect downloads are sent by others).",
                             ["action"], registry=r)
        self.denials = Counter("mlwarden_registry_denials_total",
                               "Requests refused by access control, by reason.",
                               ["reason"], registry=r)
        self.offloaded = Counter("mlwarden_registry_offloaded_downloads_total",
                                 "Downloads handed to object storage (presigned redirect) or "
                                 "to nginx (X-Accel-Redirect).", ["kind"], registry=r)
        self.latency = Histogram("mlwarden_registry_request_duration_seconds",
                                 "Time from request to the last byte, by action.", ["action"],
                                 buckets=_BUCKETS, registry=r)
        self.inflight = Gauge("mlwarden_registry_downloads_in_flight",
                              "File responses being sent right now.", registry=r,
                              multiprocess_mode="livesum")

    def observe(self, e: AuditEntry, seconds: float) -> None:
        self.requests.labels(e.action, str(e.status)).inc()
        if e.action == "denied" or e.status in (401, 403):
            reason = "unauthenticated" if e.status == 401 and "Invalid credentials" in \
                e.detail else ("gated" if e.status == 401 else "not-visible")
            self.denials.labels(reason).inc()
        if e.bytes:
            self.bytes.labels(e.action).inc(e.bytes)
        if "presigned" in e.detail:
            self.offloaded.labels("presigned-redirect").inc()
        elif "x-accel" in e.detail:
            self.offloaded.labels("x-accel-redirect").inc()
        self.latency.labels(e.action).observe(max(0.0, seconds))

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._multiproc:
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            out: bytes = generate_latest(combined)
            return out
        mine: bytes = generate_latest(self.registry)
        return mine


def mark_worker_dead(pid: int) -> None:
    """Called by the supervisor when a worker exits (drops its live gauges)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
