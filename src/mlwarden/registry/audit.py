"""Audit writer: requests hand entries to a queue; one thread writes them in batches.

The request path only appends to a queue (no DB write, no lock held while serving), and
``close()`` drains everything, so a clean shutdown loses nothing. If the database refuses
a batch even after retries, the entries go to stderr as JSON lines rather than vanish.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time

from mlwarden.store import AuditEntry, Store

_STOP = object()


class AuditWriter:
    def __init__(self, store: Store, max_batch: int = 500, interval: float = 0.25) -> None:
        self.store = store
        self.max_batch = max_batch
        self.interval = interval
        self._q: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mlwarden-audit", daemon=True)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def log(self, entry: AuditEntry) -> None:
        self._q.put(entry)

    def close(self, timeout: float = 30.0) -> None:
        """Flush every queued entry and stop the writer."""
        with self._lock:
            if not self._started:
                self._started = True
                self._q.put(_STOP)
                self._run()
                return
        self._q.put(_STOP)
        self._thread.join(timeout)

    def flush(self) -> None:
        """Wait until everything queued so far is written (used by tests and shutdown)."""
        done = threading.Event()
        self._q.put(done)
        if self._started and self._thread.is_alive():
            done.wait(30)

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[AuditEntry] = []
            events: list[threading.Event] = []
            try:
                item = self._q.get(timeout=self.interval)
            except queue.Empty:
                continue
            deadline = time.monotonic() + self.interval
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                elif isinstance(item, AuditEntry):
                    batch.append(item)
                if stop or events or len(batch) >= self.max_batch:
                    break
                try:
                    item = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if stop:  # drain whatever arrived before the stop marker was read
                while True:
                    try:
                        item = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, AuditEntry):
                        batch.append(item)
                    elif isinstance(item, threading.Event):
                        events.append(item)
            self._write(batch)
            for e in events:
                e.set()

    def _write(self, batch: list[AuditEntry]) -> None:
        if not batch:
            return
        for attempt in range(5):
            try:
                self.store.append_audit(batch)
                return
            except Exception as exc:  # the log must survive a busy or failing database
                last = exc
                time.sleep(0.2 * (attempt + 1))
        print(f"mlwarden: audit database write failed ({last}); entries follow",
              file=sys.stderr)
        for e in batch:
            print(json.dumps(e.to_dict()), file=sys.stderr)
