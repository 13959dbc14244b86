"""Bridge to the store's own approvals table (mlwarden.store): mirror its events (approve,
revoke, branch/tag moves, gating) into the signed log, and cross-check them later, so an
edit or deletion in the database is caught by ``mlwarden log verify``.

Until the store calls ``append`` itself, ``record_store_events`` (``mlwarden log sync``) is
the hook: idempotent, it appends each store event not yet mirrored."""

from __future__ import annotations

import os
from typing import Any

from mlwarden.approvals.log import LogEntry, append, read_log

_KIND = {"approve": "approval", "revoke": "revocation", "move-tag": "tag-move",
         "move-branch": "tag-move", "gate": "approval", "ungate": "approval",
         "delete-tag": "tag-move", "delete-branch": "tag-move", "delete-repo": "revocation"}


def _event_details(ev: Any) -> dict[str, Any]:
    return {"store_event_id": ev.id, "action": ev.action, "repo": ev.repo,
            "commit": ev.commit, "ref": ev.ref, "previous": ev.previous,
            "at": ev.at, "note": ev.note}


def record_store_events(store: Any, *, key: str | os.PathLike[str] | None = None,
                        checkpoint: str | os.PathLike[str] | None = None) -> list[LogEntry]:
    mirrored = {e.details.get("store_event_id") for e in read_log(store)
                if "store_event_id" in e.details}
    added = []
    for ev in store.approvals():
        if ev.id in mirrored:
            continue
        subject = f"{ev.repo}@{ev.commit}" + (f" {ev.ref}" if ev.ref else "")
        added.append(append(store, _KIND.get(ev.action, "approval"), subject,
                            _event_details(ev), actor=ev.actor, key=key,
                            checkpoint=checkpoint, when=ev.at))
    return added


def cross_check(store: Any, entries: list[LogEntry]) -> tuple[list[str], list[str]]:
    """(problems, warnings): mirrored events that the database no longer has or now records
    differently are problems; database events not yet in the log are a warning."""
    problems: list[str] = []
    db = {ev.id: ev for ev in store.approvals()}
    seen = set()
    for e in entries:
        sid = e.details.get("store_event_id")
        if sid is None:
            continue
        seen.add(sid)
        ev = db.get(sid)
        if ev is None:
            problems.append(f"store event {sid} (log seq {e.seq}) was deleted from the "
                            "store database")
            continue
        want = {k: v for k, v in e.details.items()}
        got = _event_details(ev)
        diff = sorted(k for k in got if want.get(k) != got[k] or k not in want)
        if diff or e.actor != ev.actor:
            problems.append(f"store event {sid} (log seq {e.seq}) differs from the log: "
                            f"{', '.join(diff) or 'actor'}")
    pending = [i for i in db if i not in seen]
    warnings = [f"{len(pending)} store event(s) not yet in the log: run `mlwarden log sync`"] \
        if pending else []
    return problems, warnings
