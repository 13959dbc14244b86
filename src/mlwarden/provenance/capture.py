"""What the run touched, put together: the probe logs of every process, and a before/after
snapshot of the output roots (which also sees files written by native code)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.provenance.probe import resolve

MAX_LOG_BYTES = 256 << 20
SKIP_DIRS = frozenset({".git", "__pycache__", ".hg", ".svn"})

StatKey = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    executable: str
    sys_path: tuple[str, ...]
    prefix: str
    base_prefix: str
    python: str
    cwd: str


@dataclass(frozen=True)
class Capture:
    reads: Mapping[str, str]  # absolute path -> how it was seen (open, safetensors, mmap...)
    writes: Mapping[str, str]
    processes: tuple[ProcessInfo, ...] = ()
    damaged_lines: int = 0  # unparsable log lines (a process killed mid-write)

    @property
    def main(self) -> ProcessInfo | None:
        return self.processes[0] if self.processes else None

    def site_dirs(self) -> list[str]:
        """Every sys.path entry and prefix of every process: the Python environment."""
        out: dict[str, None] = {}
        for p in self.processes:
            for e in (*p.sys_path, p.prefix, p.base_prefix):
                if e:
                    out[os.path.abspath(e)] = None
        return list(out)


def _process(rec: Mapping[str, Any]) -> ProcessInfo | None:
    try:
        return ProcessInfo(int(rec["pid"]), str(rec.get("executable", "")),
                           tuple(str(x) for x in rec.get("sys_path", [])),
                           str(rec.get("prefix", "")), str(rec.get("base_prefix", "")),
                           str(rec.get("python", "")), str(rec.get("cwd", "")))
    except (KeyError, TypeError, ValueError):
        return None


def _parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """JSON objects, one per line; (objects, damaged lines). All lines in one parse when
    none is damaged (the usual case: several times faster than a parse per line)."""
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    text = b"[" + b",".join(lines) + b"]"
    try:
        whole = json.loads(text.decode("utf-8", "surrogateescape"))
        if len(whole) == len(lines) and all(isinstance(r, dict) for r in whole):
            return whole, 0
    except (ValueError, RecursionError):
        pass
    out: list[dict[str, Any]] = []
    bad = 0
    for line in lines:
        try:
            rec = json.loads(line.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad += 1
    return out, bad


def read_logs(directory: Path) -> Capture:
    reads: dict[str, str] = {}
    writes: dict[str, str] = {}
    procs: list[tuple[float, ProcessInfo]] = []
    damaged = 0
    total = 0
    for f in sorted(directory.glob("*.jsonl")):
        try:
            data = f.read_bytes()
        except OSError:
            continue
        total += len(data)
        if total > MAX_LOG_BYTES:
            raise ValueError(f"capture logs in {directory} exceed {MAX_LOG_BYTES} bytes")
        recs: list[tuple[str, Any, str]] = []
        parsed, bad = _parse_lines(data)
        damaged += bad
        for rec in parsed:
            op = rec.get("op")
            if op == "start":
                info = _process(rec) if "executable" in rec else None
                t = rec.get("t")
                if info is not None:
                    procs.append((float(t) if isinstance(t, (int, float)) else 0.0, info))
                if isinstance(rec.get("cwd"), str):
                    recs.append(("cwd", rec["cwd"], ""))
            elif op in ("r", "w", "cwd") and isinstance(rec.get("path"), str):
                recs.append((op, rec["path"], str(rec.get("via"))))
        # Relative paths are relative to the process's working directory at the time.
        r, w = resolve(recs)
        for k, v in r.items():
            reads.setdefault(k, v)
        for k, v in w.items():
            writes.setdefault(k, v)
    # The first Python process to start is the command itself (or the first it started).
    procs.sort(key=lambda x: x[0])
    return Capture(reads, writes, tuple(p for _, p in procs), damaged)


# ----------------------------------------------------------------------------- snapshots


@dataclass
class Snapshot:
    files: dict[str, StatKey] = field(default_factory=dict)
    roots: tuple[str, ...] = ()


def _key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def take_snapshot(roots: Iterable[str | os.PathLike[str]],
                  exclude: Iterable[str | os.PathLike[str]] = ()) -> Snapshot:
    """Regular files under ``roots`` (symlinks are not followed, VCS metadata skipped)."""
    skip = {os.path.abspath(e) for e in exclude}
    snap = Snapshot(roots=tuple(os.path.abspath(r) for r in roots))
    stack = [r for r in snap.roots if os.path.isdir(r) and r not in skip]
    for r in snap.roots:
        if os.path.isfile(r) and r not in skip:
            snap.files[r] = _key(os.stat(r))
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                path = os.path.join(d, e.name)
                if path in skip:
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if e.name not in SKIP_DIRS:
                        stack.append(path)
                elif stat.S_ISREG(st.st_mode):
                    snap.files[path] = _key(st)
    return snap


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Files new or changed between the snapshots (deleted ones are not outputs)."""
    return sorted(p for p, k in after.files.items() if before.files.get(p) != k)
