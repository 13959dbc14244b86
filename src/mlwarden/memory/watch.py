"""Watch sealed instruction files with filesystem events (watchdog), re-verify after a quiet
period (debounce), and notify when the verification state changes.

Our own reads during verification produce "opened"/"closed_no_write" events on inotify;
those are ignored, or every verification would trigger the next one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from watchdog.events import FileSystemEvent, FileSystemEventHandler

import mlwarden
from mlwarden.memory.discover import DEFAULT_EXCLUDES, HOME_AGENT_DIRS
from mlwarden.memory.seal import VerifyOutcome

IGNORED_EVENTS = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True)
class Notice:
    """One state change worth telling someone about."""

    root: str
    ok: bool
    summary: str
    outcome: VerifyOutcome

    def to_json(self) -> dict[str, object]:
        return {
            "event": "mlwarden.memory.verified" if self.ok else "mlwarden.memory.changed",
            "tool": {"name": "mlwarden", "version": mlwarden.__version__},
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "root": self.root,
            "ok": self.ok,
            "summary": self.summary,
            "verdict": self.outcome.report.verdict.value,
            "changes": [c.to_dict() for c in self.outcome.changes],
            "findings": [
                {"path": fr.path, **f.to_dict()}
                for fr in self.outcome.report.files for f in fr.findings
                if f.verdict.value != "clean"
            ],
        }


Notifier = Callable[[Notice], None]


def summarize(outcome: VerifyOutcome) -> str:
    if not outcome.sealed:
        msgs = [f.message for fr in outcome.report.files for f in fr.findings]
        return "seal cannot be used: " + "; ".join(msgs)
    if not outcome.changes:
        return "all sealed instruction files match the seal"
    return f"{len(outcome.changes)} change(s): " + "; ".join(
        f"{c.change} {c.path}" for c in outcome.changes)


def log_notifier(out: IO[str] | None = None) -> Notifier:
    def notify(n: Notice) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        stream = out if out is not None else sys.stderr
        level = "ok" if n.ok else "ALERT"
        stream.write(f"{stamp} mlwarden memory watch {level}: {n.root}: {n.summary}\n")
        stream.flush()
    return notify


def webhook_notifier(url: str, timeout: float = 10.0,
                     on_error: Callable[[str], None] | None = None) -> Notifier:
    """POST the notice as JSON. A failing webhook is reported, never fatal."""
    def notify(n: Notice) -> None:
        body = json.dumps(n.to_json()).encode()
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": f"mlwarden/{mlwarden.__version__}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                resp.read(65536)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if on_error is not None:
                on_error(f"webhook {url} failed: {exc}")
    return notify


def _state_key(outcome: VerifyOutcome) -> tuple[object, ...]:
    return (outcome.sealed, tuple((c.path, c.change, c.detail) for c in outcome.changes))


class _Handler(FileSystemEventHandler):
    """Collects relevant events; the watch loop reads ``last`` under ``lock``."""

    def __init__(self, ignored_dirs: Sequence[str], bases: Sequence[Path]) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.pending = False
        self.last = 0.0
        self.ignored = set(ignored_dirs)
        # Longest first: an event is judged relative to the innermost watched directory, so
        # a root that itself lives under e.g. ".../venv/..." is not ignored wholesale.
        self.bases = sorted((os.path.abspath(b) for b in bases), key=len, reverse=True)

    def _relative(self, path: str) -> str:
        for base in self.bases:
            if path == base or path.startswith(base.rstrip(os.sep) + os.sep):
                return os.path.relpath(path, base)
        return path

    def dispatch(self, event: FileSystemEvent) -> None:  # called for every event
        if event.event_type in IGNORED_EVENTS:
            return
        paths = [event.src_path, event.dest_path]
        relevant = False
        for p in paths:
            if not p:
                continue
            rel = self._relative(os.path.abspath(os.fsdecode(p)))
            parts = set(rel.replace("\\", "/").split("/"))
            if not parts & self.ignored:
                relevant = True
        if relevant:
            with self.lock:
                self.pending = True
                self.last = time.monotonic()


def watch(
    verify_once: Callable[[], VerifyOutcome],
    watch_dirs: Iterable[tuple[Path, bool]],
    notifiers: Sequence[Notifier],
    root_label: str,
    *,
    debounce: float = 0.5,
    stop_on_change: bool = False,
    timeout: float | None = None,
    ready: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    extra_ignored: Sequence[str] = (),
) -> VerifyOutcome:
    """Verify now, then after every burst of relevant events; notify on state changes.

    Returns the last outcome: the failing one when ``stop_on_change`` ends the watch, else
    the state when ``timeout`` passed or ``stop`` was set.
    """
    from watchdog.observers import Observer

    # .mlwarden is not ignored: the seal lives there and replacing it is a change.
    ignored = [d for d in DEFAULT_EXCLUDES if d != ".mlwarden"] + list(extra_ignored)
    dirs = list(watch_dirs)
    handler = _Handler(ignored, [d for d, _ in dirs])
    observer = Observer()
    for directory, recursive in dirs:
        if directory.is_dir():
            observer.schedule(handler, str(directory), recursive=recursive)
    observer.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        outcome = verify_once()
        last_key = _state_key(outcome)
        if not outcome.ok:
            _notify(notifiers, Notice(root_label, False, summarize(outcome), outcome))
            if stop_on_change:
                return outcome
        if ready is not None:
            ready()
        while True:
            if stop is not None and stop.is_set():
                return outcome
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return outcome
            with handler.lock:
                due = handler.pending and now - handler.last >= debounce
                if due:
                    handler.pending = False
            if not due:
                time.sleep(0.05)
                continue
            outcome = verify_once()
            key = _state_key(outcome)
            if key != last_key:
                last_key = key
                _notify(notifiers, Notice(root_label, outcome.ok, summarize(outcome), outcome))
                if stop_on_change and not outcome.ok:
                    return outcome
    finally:
        observer.stop()
        observer.join(timeout=5)


def _notify(notifiers: Sequence[Notifier], notice: Notice) -> None:
    for n in notifiers:
        n(notice)


def watch_dirs_for(root: Path, seal_path: Path, home: Path | None,
                   include_home: bool) -> list[tuple[Path, bool]]:
    """The root recursively, the seal's directory, and the agents' home directories."""
    dirs: list[tuple[Path, bool]] = [(root, True)]
    seal_dir = seal_path.parent
    try:
        seal_dir.relative_to(root)
    except ValueError:
        dirs.append((seal_dir, False))
    if include_home:
        h = home if home is not None else Path.home()
        for d in HOME_AGENT_DIRS:
            dirs.append((h / d, True))
        for d in (".config/Claude", "Library/Application Support/Claude",
                  "AppData/Roaming/Claude"):
            dirs.append((h / d, False))
    return dirs
