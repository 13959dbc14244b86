"""Test-only fault injection, read from the environment (documented in docs/airlock.md).

``MLWARDEN_TEST_CRASH_AT=<stage>`` makes ``pull`` call ``os._exit(99)`` right after that
stage, with no cleanup, as a SIGKILL would. ``MLWARDEN_TEST_FAIL_WRITE=<bytes>`` makes a
quarantine write fail with ENOSPC once a file passes that many bytes. Neither changes what
a successful run does; both exist so the fault tests can stop pull at every stage.
"""

from __future__ import annotations

import os

STAGES = ("resolve", "list", "download", "scan", "policy", "ingest", "commit", "manifest",
          "approve")
CRASH_EXIT = 99


def checkpoint(stage: str) -> None:
    if os.environ.get("MLWARDEN_TEST_CRASH_AT") == stage:
        os._exit(CRASH_EXIT)


def failing_write() -> int | None:
    v = os.environ.get("MLWARDEN_TEST_FAIL_WRITE")
    return int(v) if v and v.isdigit() else None
