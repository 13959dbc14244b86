"""The monitor loop: filesystem events (inotify through watchdog) checked as they come, a
stat sweep every ``interval`` seconds (catches what events miss: a watch limit, a change
while we were down, a bind mount), and a full re-hash every ``rehash_interval``.

An issue alerts once per (rule, path) and observed content; the state remembers it across
restarts, and an issue that disappears (file restored, or a new approved deployment covers
it) is reported as resolved. Paths under the state directory are never watched or checked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import queue
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlwarden
from mlwarden.monitor import rules as R
from mlwarden.monitor.baseline import Baseline, RootBaseline, Sources
from mlwarden.monitor.checks import EnvIndex, Issue, check_model_path, walk_files
from mlwarden.monitor.sinks import Sink, WebhookSink, host
from mlwarden.monitor.state import State, state_path

EXIT_ALERT = 1


@dataclass
class MonitorOptions:
    sources: Sources
    sites: list[Path] = field(default_factory=list)
    state_dir: Path = Path(".")
    interval: float = 60.0
    rehash_interval: float = 3600.0
    debounce: float = 0.2
    exit_on_alert: bool = False
    once: bool = False
    bytecode: str = "verify"  # verify | header
    startup: str = "auto"  # auto | full | quick
    events: bool = True


class _Handler:
    """watchdog handler: every path touched goes into the queue."""

    def __init__(self, q: queue.Queue[str]) -> None:
        self.q = q

    def dispatch(self, event: Any) -> None:
        for attr in ("src_path", "dest_path"):
            p = getattr(event, attr, None)
            if p:
                self.q.put(os.fsdecode(p))


class Monitor:
    def __init__(self, opts: MonitorOptions, sinks: list[Sink],
                 webhook: WebhookSink | None = None, metrics: Any = None) -> None:
        self.opts = opts
        self.sinks = sinks
        self.webhook = webhook
        self.metrics = metrics
        self.state_dir = str(opts.state_dir.resolve())
        self.events: queue.Queue[str] = queue.Queue()
        self.stop_event = threading.Event()
        self.baseline = Baseline()
        self.env: EnvIndex | None = None
        self.observer: Any = None
        self.lock = threading.Lock()
        self.new_alerts = 0
        self.state = State(Path(self.state_dir) / "unset.json")
        self.identity = ""
        self.watch_warning: str | None = None

    # -- setup ------------------------------------------------------------------------

    def _identity(self) -> str:
        s = self.opts.sources
        parts = [*map(str, s.deployments), *(f"{b}:{d}" for b, _, d in s.boms),
                 str(s.manifest), *(f"{r}={d}" for r, d in s.manifest_models),
                 *map(str, self.opts.sites)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]

    def load_baseline(self) -> list[Issue]:
        new = self.opts.sources.load()
        issues = [Issue(R.BASELINE, "", f"baseline:{i}", e, hashlib.sha256(e.encode())
                        .hexdigest()) for i, e in enumerate(new.errors)]
        if new.errors and self.baseline.roots:
            # Keep enforcing the last approval that verified; the broken one alerts.
            new = Baseline(self.baseline.roots, self.baseline.libraries, self.baseline.label,
                           new.reload_on, new.errors)
        self.baseline = new
        if self.opts.sites:
            if new.libraries is None:
                issues.append(Issue(R.BASELINE, "", "baseline:environment",
                                    "site-packages are watched but no approved BOM lists the "
                                    "environment (deploy with --environment, or --env-sbom)",
                                    "no-environment"))
            self.env = EnvIndex(self.opts.sites, new.libraries or {}, self.opts.bytecode)
        if self.metrics is not None:
            self.metrics.baseline_valid.set(0 if new.errors else 1)
            self.metrics.watched.set(sum(len(r.files) for r in new.roots) +
                                     (len(self.env.allowed) if self.env else 0))
        return issues

    def _watch(self) -> None:
        if not self.opts.events:
            return
        from watchdog.observers import Observer

        if self.observer is not None:
            self.observer.stop()
            self.observer.join(5)
        self.observer = Observer()
        handler = _Handler(self.events)
        dirs: dict[str, bool] = {}
        for r in self.baseline.roots:
            dirs[str(r.root)] = True
        for s in self.opts.sites:
            dirs[str(s)] = True
        for f in self.baseline.reload_on:
            dirs.setdefault(str(f.parent), False)
        try:
            for d, recursive in dirs.items():
                if os.path.isdir(d):
                    self.observer.schedule(handler, d, recursive=recursive)
            self.observer.start()
            self.watch_warning = None
        except OSError as exc:
            self.watch_warning = (f"filesystem events unavailable ({exc}); relying on the "
                                  f"sweep every {self.opts.interval:g}s")
            self._emit({"event": "warning", "message": self.watch_warning})
            with contextlib.suppress(Exception):
                self.observer.stop()
            self.observer = None

    # -- checking ---------------------------------------------------------------------

    def _skip(self, path: str) -> bool:
        return path == self.state_dir or path.startswith(self.state_dir + "/")

    def _root_for(self, path: str) -> RootBaseline | None:
        best = None
        for r in self.baseline.roots:
            root = str(r.root)
            if (path == root or path.startswith(root + "/")) and \
                    (best is None or len(root) > len(str(best.root))):
                best = r
        return best

    def check_path(self, path: str) -> list[Issue]:
        if self._skip(path):
            return []
        if os.path.isdir(path) and not os.path.islink(path):
            out: list[Issue] = []
            for p, _ in walk_files(Path(path), (self.state_dir,)):
                out.extend(self.check_path(p))
            return out
        r = self._root_for(path)
        if r is not None:
            issues = check_model_path(r, path)
            if not os.path.lexists(path):  # a deleted directory takes its files with it
                prefix = os.path.relpath(path, r.root).replace(os.sep, "/") + "/"
                for rel in r.files:
                    if rel.startswith(prefix):
                        issues.extend(check_model_path(r, str(r.root / rel)))
            return issues
        if self.env is not None and self.env.site_of(path) is not None:
            issues = self.env.check_path(path)
            if not os.path.lexists(path):
                issues.extend(i for p in [q for q in self.env.allowed
                                          if q.startswith(path + "/")]
                              for i in self.env.check_path(p))
            return issues
        return []

    def _stat_key(self, st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]

    def sweep(self, full: bool) -> tuple[list[Issue], set[str]]:
        """Everything: files whose stat changed (or all, when ``full``) are re-checked;
        approved files that vanished are missing. Returns (issues, paths in scope)."""
        t0 = time.monotonic()
        issues: list[Issue] = []
        scope: set[str] = set()
        seen: set[str] = set()
        stats = self.state.stats
        if full:
            stats.clear()
        if self.env is not None:
            self.env.rebuild()
            issues.extend(self.env.dist_issues())
            scope.update(d.info_dir for d in self.env.dists.values())
            scope.update(i.path for i in issues)
        roots = [str(r.root) for r in self.baseline.roots] + [str(s) for s in self.opts.sites]
        for root in roots:
            for p, st in walk_files(Path(root), (self.state_dir,)):
                seen.add(p)
                key = self._stat_key(st)
                if stats.get(p) == key:
                    scope.add(p)
                    continue
                found = self.check_path(p)
                issues.extend(found)
                scope.add(p)
                if not found:
                    stats[p] = key
                else:
                    stats.pop(p, None)
        for r in self.baseline.roots:
            for rel in r.files:
                p = str(r.root / rel)
                if p not in seen:
                    scope.add(p)
                    issues.extend(check_model_path(r, p))
        if self.env is not None:
            for p in self.env.allowed:
                if p not in seen and self.env.site_of(p) is not None and \
                        not os.path.lexists(p):
                    scope.add(p)
                    issues.extend(self.env.check_path(p))
        for p in [p for p in stats if p not in seen]:
            del stats[p]
        scope.update(k.split("|", 1)[1] for k in self.state.alerted)
        self.state.dirty = True
        if self.metrics is not None:
            self.metrics.duration.labels("full" if full else "sweep").set(
                time.monotonic() - t0)
            if full:
                self.metrics.last_full.set(time.time())
        return issues, scope

    # -- alerting ---------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        event.setdefault("tool", "mlwarden")
        event.setdefault("version", mlwarden.__version__)
        event.setdefault("time", dt.datetime.now(dt.timezone.utc).isoformat())
        event.setdefault("host", host())
        event.setdefault("monitor", self.identity)
        for s in self.sinks:
            try:
                s.send(event)
            except OSError as exc:
                import sys

                sys.stderr.write(f"mlwarden monitor: cannot deliver to {type(s).__name__}: "
                                 f"{exc}\n")

    def process(self, issues: Iterable[Issue], scope: set[str]) -> int:
        """Alert on new issues, resolve outstanding ones in ``scope`` that are gone."""
        fired = 0
        current: dict[str, Issue] = {}
        for i in issues:
            current[i.key] = i
        now = time.time()
        with self.lock:
            for key, i in current.items():
                known = self.state.alerted.get(key)
                if known is not None and known.get("fingerprint") == i.fingerprint:
                    known["last_seen"] = now
                    continue
                self.state.alerted[key] = {**i.to_dict(), "fingerprint": i.fingerprint,
                                           "first_seen": now, "last_seen": now}
                self.state.dirty = True
                fired += 1
                if self.metrics is not None:
                    self.metrics.alerts.labels(i.rule.id).inc()
                self._emit({"event": "alert", **i.to_dict(),
                            "baseline": self.baseline.label})
            for key in list(self.state.alerted):
                path = key.split("|", 1)[1]
                if key not in current and (path in scope or key.startswith(
                        "monitor-baseline-invalid|")):
                    old = self.state.alerted.pop(key)
                    self.state.dirty = True
                    self._emit({"event": "resolved", "rule": old.get("rule"), "path": path,
                                "baseline": self.baseline.label})
            if self.metrics is not None:
                self.metrics.outstanding.set(len(self.state.alerted))
        self.new_alerts += fired
        return fired

    def outstanding(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(v) for v in self.state.alerted.values()]

    def _undelivered(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.state.pending.append(event)
            self.state.dirty = True
        if self.metrics is not None:
            self.metrics.webhook_failures.inc()

    def _save(self) -> None:
        with self.lock:
            if self.state.dirty:
                self.state.save()

    # -- running ----------------------------------------------------------------------

    def start(self) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.identity = self._identity()
        self.state = State.load(state_path(Path(self.state_dir), self.identity))
        if self.webhook is not None:
            self.webhook.on_undelivered = self._undelivered
            pending, self.state.pending = self.state.pending, []
            for ev in pending:  # delivered before any new event: order is kept
                self.webhook.send(ev)

    def run(self) -> int:
        from mlwarden.util.fs import LockedError, file_lock

        try:
            with file_lock(Path(self.state_dir) / f"monitor-{self._identity()}.lock",
                           blocking=False):
                return self._run()
        except LockedError:
            from mlwarden.monitor.errors import MonitorError

            raise MonitorError(f"another monitor with this configuration is running "
                               f"(state in {self.state_dir})") from None

    def _run(self) -> int:
        self.start()
        issues = self.load_baseline()
        fingerprint = self.baseline.fingerprint
        quick = self.opts.startup == "quick" or (
            self.opts.startup == "auto" and self.state.baseline == fingerprint and
            bool(self.state.stats))
        found, scope = self.sweep(full=not quick)
        self.state.baseline = fingerprint
        self.process([*issues, *found], scope)
        self._save()
        if self.opts.once:
            self._finish()
            return EXIT_ALERT if self.state.alerted else 0
        if self.opts.exit_on_alert and self.new_alerts:
            self._finish()
            return EXIT_ALERT
        self._watch()
        self._emit({"event": "started", "message": f"watching {self.baseline.label or '-'}",
                    "baseline": self.baseline.label})
        old_handlers = self._signals()
        try:
            return self._loop()
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if self.observer is not None:
                self.observer.stop()
                self.observer.join(5)
            self._finish()

    def _signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def stop(_s: int, _f: Any) -> None:
            self.stop_event.set()

        return {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def _loop(self) -> int:
        now = time.monotonic()
        next_sweep = now + self.opts.interval
        next_full = now + self.opts.rehash_interval
        reload = {str(p) for p in self.baseline.reload_on}
        while not self.stop_event.is_set():
            timeout = max(0.0, min(next_sweep, next_full) - time.monotonic())
            try:
                first = self.events.get(timeout=min(timeout, 0.5))
            except queue.Empty:
                first = None
            if first is not None:
                time.sleep(self.opts.debounce)
                paths = {first}
                while True:
                    try:
                        paths.add(self.events.get_nowait())
                    except queue.Empty:
                        break
                if paths & reload:
                    issues = self.load_baseline()
                    reload = {str(p) for p in self.baseline.reload_on}
                    if self.baseline.fingerprint != self.state.baseline:
                        self.state.baseline = self.baseline.fingerprint
                        self._watch()
                        found, scope = self.sweep(full=True)
                        self.process([*issues, *found], scope)
                        self._save()
                        if self._should_exit():
                            return EXIT_ALERT
                        continue
                    self.process(issues, set())
                issues = []
                scope = set()
                for p in sorted(paths - reload):
                    if self._skip(p):
                        continue
                    found = self.check_path(p)
                    issues.extend(found)
                    scope.add(p)
                    scope.update(i.path for i in found)
                    if os.path.isdir(p):
                        scope.update(q for q, _ in walk_files(Path(p), (self.state_dir,)))
                    if not found:
                        self.state.stats.pop(p, None)
                self.process(issues, scope)
                self._save()
                if self._should_exit():
                    return EXIT_ALERT
            now = time.monotonic()
            if now >= next_full or now >= next_sweep:
                full = now >= next_full
                found, scope = self.sweep(full=full)
                self.process(found, scope)
                self._save()
                next_sweep = time.monotonic() + self.opts.interval
                if full:
                    next_full = time.monotonic() + self.opts.rehash_interval
                if self._should_exit():
                    return EXIT_ALERT
        return 0

    def _should_exit(self) -> bool:
        return self.opts.exit_on_alert and self.new_alerts > 0

    def _finish(self) -> None:
        if self.webhook is not None:
            self.webhook.flush(15.0)
        self._save()
