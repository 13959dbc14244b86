"""What the monitor must remember across restarts: the changes it already alerted on (so a
restart does not alert again; a change to another content alerts anew), the alerts a
webhook has not yet acknowledged, and the stat of every file it verified (so a restart does
not have to re-hash unchanged files). Written atomically, under a lock: one monitor per
state file."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.util.fs import atomic_write_text

VERSION = 1
MAX_STATE_BYTES = 512 << 20


@dataclass
class State:
    path: Path
    alerted: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> issue + times
    pending: list[dict[str, Any]] = field(default_factory=list)  # undelivered webhook bodies
    stats: dict[str, list[Any]] = field(default_factory=dict)  # path -> [size, mtime, ctime,
    #                                                             ino, verdict-key]
    baseline: str = ""
    dirty: bool = False

    @classmethod
    def load(cls, path: Path) -> State:
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_STATE_BYTES + 1)
            doc = json.loads(data) if len(data) <= MAX_STATE_BYTES else {}
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError):
            # A damaged state only costs duplicate alerts, never a missed one.
            return cls(path)
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            return cls(path)
        return cls(path, dict(doc.get("alerted") or {}), list(doc.get("pending") or []),
                   dict(doc.get("stats") or {}), str(doc.get("baseline") or ""))

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps({
            "version": VERSION, "saved_at": time.time(), "baseline": self.baseline,
            "alerted": self.alerted, "pending": self.pending, "stats": self.stats},
            separators=(",", ":")), mode=0o600)
        self.dirty = False


def state_path(state_dir: Path, identity: str) -> Path:
    return state_dir / f"monitor-{identity}.json"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return Path(base) / "mlwarden" / "monitor"
