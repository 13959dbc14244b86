"""The fleet coordinator: skip what the sink already holds, keep the executor busy, retry
what failed, record finished repositories in batches, report progress.

Resumability comes from the sink: a repository is done exactly when its row is committed
there, so a run killed at any point (kill -9 included) restarts with the rest, and no
repository is recorded twice. Work lost with a killed worker is simply submitted again.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlwarden.fleet.executors import WorkerLost, make_executor
from mlwarden.fleet.inputs import RepoTask
from mlwarden.fleet.sinks import Sink
from mlwarden.fleet.worker import RepoOutcome, RetryRepo, WorkerConfig, _failed
from mlwarden.scan.sources.polite import Politeness

BATCH = 50  # repositories per sink write (MLWARDEN_FLEET_BATCH overrides)
BATCH_SECONDS = 2.0  # ... or sooner, so little is lost to a kill


@dataclass(frozen=True)
class FleetOptions:
    workers: int = 0  # 0: one per CPU (local) / the cluster's CPUs (Ray)
    ray: str | None = None  # None: local processes; "auto": start Ray here; else an address
    cache_url: str | None = None
    politeness: Politeness = field(default_factory=Politeness)
    attempts: int = 4  # per repository, counting worker deaths
    hash: str = "never"


@dataclass
class FleetStats:
    total: int = 0  # repositories to scan in this run
    skipped: int = 0  # already in the sink
    done: int = 0
    files: int = 0
    cached_files: int = 0
    bytes_read: int = 0
    total_bytes: int = 0
    retries: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def hit_rate(self) -> float:
        return self.cached_files / self.files if self.files else 0.0

    def add(self, o: RepoOutcome) -> None:
        self.done += 1
        r = o.repo
        self.files += int(r.get("files") or 0)
        self.cached_files += int(r.get("cached_files") or 0)
        self.bytes_read += int(r.get("bytes_read") or 0)
        self.total_bytes += int(r.get("total_bytes") or 0)
        self.verdicts[str(r.get("verdict"))] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"repositories": self.done, "skipped": self.skipped, "files": self.files,
                "cached_files": self.cached_files, "cache_hit_rate": round(self.hit_rate, 4),
                "bytes_read": self.bytes_read, "total_bytes": self.total_bytes,
                "retries": self.retries, "verdicts": dict(sorted(self.verdicts.items())),
                "seconds": round(self.elapsed, 3),
                "repos_per_second": round(self.rate, 3)}


def run_fleet(tasks: Iterable[RepoTask], sink: Sink, options: FleetOptions,
              on_progress: Callable[[FleetStats], None] | None = None) -> FleetStats:
    done_keys = sink.done()
    todo: list[RepoTask] = []
    seen: set[str] = set()
    stats = FleetStats()
    for t in tasks:
        if t.key in seen:
            continue
        seen.add(t.key)
        if t.key in done_keys:
            stats.skipped += 1
        else:
            todo.append(t)
    stats.total = len(todo)
    if on_progress:
        on_progress(stats)
    if not todo:
        return stats
    cfg = WorkerConfig(options.cache_url, None, options.politeness, options.hash)
    executor = make_executor(options.ray, options.workers, cfg, options.politeness)
    pending: deque[tuple[RepoTask, int, float]] = deque((t, 1, 0.0) for t in todo)
    inflight: dict[object, tuple[RepoTask, int]] = {}
    buffer: list[RepoOutcome] = []
    last_flush = time.monotonic()
    batch = int(os.environ.get("MLWARDEN_FLEET_BATCH", "") or BATCH)

    def flush() -> None:
        nonlocal last_flush
        if buffer:
            sink.write(buffer)
            for o in buffer:
                stats.add(o)
            buffer.clear()
            if on_progress:
                on_progress(stats)
        last_flush = time.monotonic()

    try:
        while pending or inflight:
            now = time.monotonic()
            waiting: list[tuple[RepoTask, int, float]] = []
            while pending and len(inflight) < executor.capacity * 2:
                task, attempt, not_before = pending.popleft()
                if not_before > now:
                    waiting.append((task, attempt, not_before))
                    continue
                final = attempt >= options.attempts
                inflight[executor.submit((task, attempt, final))] = (task, attempt)
            pending.extendleft(reversed(waiting))
            for handle, result in executor.completed(timeout=0.2):
                task, attempt = inflight.pop(handle)
                if isinstance(result, RepoOutcome):
                    buffer.append(result)
                    continue
                reason = _reason(result)
                if attempt < options.attempts:
                    stats.retries += 1
                    delay = min(30.0, 0.5 * 2 ** (attempt - 1))
                    pending.append((task, attempt + 1, time.monotonic() + delay))
                else:
                    base = {"repo": task.key, "url": task.url, "endpoint": task.endpoint,
                            "attempts": attempt}
                    buffer.append(_failed(base, f"failed {attempt} times; last: {reason}",
                                          time.time()))
            if len(buffer) >= batch or time.monotonic() - last_flush > BATCH_SECONDS:
                flush()
            elif on_progress and not buffer:
                on_progress(stats)
        flush()
    finally:
        executor.close()
    return stats


def _reason(exc: object) -> str:
    if isinstance(exc, (RetryRepo, WorkerLost)):
        return str(exc)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return repr(exc)[:300]


def stats_json(stats: FleetStats) -> str:
    return json.dumps(stats.to_dict(), indent=2) + "\n"
