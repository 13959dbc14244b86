"""Where alerts go: a JSON webhook (retried, kept across restarts until delivered), syslog,
journald (native protocol), and JSON lines on stderr (``kubectl logs``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENT = "mlwarden-monitor"
_PRIORITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}


class Sink(Protocol):
    def send(self, event: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class StderrSink:
    def send(self, event: dict[str, Any]) -> None:
        sys.stderr.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        pass


def _line(event: dict[str, Any]) -> str:
    if event.get("event") == "alert":
        return (f"ALERT {event['rule']} [{event['severity']}] {event['path']}: "
                f"{event['message']}")
    if event.get("event") == "resolved":
        return f"resolved {event['rule']} {event['path']}"
    return str(event.get("message") or event.get("event"))


class SyslogSink:
    """RFC 3164 via the local socket (/dev/log, which journald also reads) or UDP host:port."""

    def __init__(self, address: str | None = None) -> None:
        addr: str | tuple[str, int]
        if address and not address.startswith("/") and ":" in address:
            host, _, port = address.rpartition(":")
            addr = (host, int(port))
        else:
            addr = address or "/dev/log"
        self.handler = logging.handlers.SysLogHandler(
            address=addr, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        self.handler.ident = f"{IDENT}: "

    def send(self, event: dict[str, Any]) -> None:
        level = logging.CRITICAL if event.get("severity") == "critical" else \
            logging.ERROR if event.get("event") == "alert" else logging.INFO
        rec = logging.LogRecord(IDENT, level, __file__, 0, _line(event), None, None)
        self.handler.emit(rec)

    def close(self) -> None:
        self.handler.close()


class JournaldSink:
    """systemd-journald's native protocol: structured fields (MLWARDEN_RULE, _PATH, ...)
    that ``journalctl MLWARDEN_RULE=monitor-pth-added`` can filter on."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @staticmethod
    def encode(fields: dict[str, str]) -> bytes:
        out = bytearray()
        for k, v in fields.items():
            b = v.encode("utf-8", "replace")
            if b"\n" in b:
                out += k.encode() + b"\n" + struct.pack("<Q", len(b)) + b + b"\n"
            else:
                out += k.encode() + b"=" + b + b"\n"
        return bytes(out)

    def send(self, event: dict[str, Any]) -> None:
        fields = {"MESSAGE": _line(event), "SYSLOG_IDENTIFIER": IDENT,
                  "PRIORITY": str(_PRIORITY.get(str(event.get("severity")), 6)
                                  if event.get("event") == "alert" else 6),
                  "MLWARDEN_EVENT": str(event.get("event", ""))}
        for k in ("rule", "path", "observed", "expected", "baseline", "host"):
            if event.get(k) is not None:
                fields[f"MLWARDEN_{k.upper()}"] = str(event[k])
        self.sock.sendto(self.encode(fields), self.path)

    def close(self) -> None:
        self.sock.close()


class WebhookSink:
    """POSTs each event as JSON. Delivery runs in a thread (a slow receiver never delays
    detection) with retries; what was not delivered is handed to ``on_undelivered`` so the
    state keeps it for the next attempt, across restarts too."""

    def __init__(self, url: str, secret: bytes | None = None, timeout: float = 5.0,
                 retries: int = 4, on_undelivered: Callable[[dict[str, Any]], None] | None =
                 None, on_delivered: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.url, self.secret, self.timeout, self.retries = url, secret, timeout, retries
        self.on_undelivered, self.on_delivered = on_undelivered, on_delivered
        self.failures = 0
        self.delivered = 0
        self._queue: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        with self._cv:
            self._queue.append(event)
            self._cv.notify()

    def _post(self, event: dict[str, Any]) -> bool:
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": IDENT}
        if self.secret is not None:
            mac = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Mlwarden-Signature"] = f"sha256={mac}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=self.timeout) as resp:
                return bool(200 <= resp.status < 300)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue and self._closed:
                    return
                event = self._queue.pop(0)
                self._busy = True
            ok = False
            for attempt in range(self.retries + 1):
                if self._post(event):
                    ok = True
                    break
                if self._closed and attempt >= 1:
                    break
                time.sleep(min(0.25 * 2 ** attempt, 5.0))
            with self._cv:
                self._busy = False
                self._cv.notify_all()
            if ok:
                self.delivered += 1
                if self.on_delivered is not None:
                    self.on_delivered(event)
            else:
                self.failures += 1
                if self.on_undelivered is not None:
                    self.on_undelivered(event)

    def flush(self, timeout: float = 15.0) -> bool:
        end = time.monotonic() + timeout
        with self._cv:
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(30)


def host() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()
