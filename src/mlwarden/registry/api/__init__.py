"""The Hub write API behind the airlock, as huggingface_hub 2.x and transformers call it.

``create_repo``/``delete_repo``, branches and tags, ``preupload``, the LFS batch API
(``basic`` and ``multipart`` transfers, ``verify``) and the NDJSON ``commit`` endpoint
(``create_pr`` -> ``refs/pr/N``). Every pushed commit is quarantined, scanned and checked
against the policy before it exists, and is created pending: readers see it only after
approval (``mlwarden.registry.review``, the console at ``/ui``, or ``mlwarden approve``).

``mount`` puts these routes (and the console) in front of the read application.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from mlwarden.registry.api.context import WriteSettings
from mlwarden.registry.audit import AuditWriter
from mlwarden.store import Store

__all__ = ["WriteSettings", "mount"]


def mount(read_app: ASGIApp, store: Store, write: WriteSettings, audit: AuditWriter,
          authenticate: object, max_target_bytes: int, max_header_bytes: int) -> ASGIApp:
    """``read_app`` with the write API and the console in front of it."""
    from mlwarden.registry.api.context import WriteContext
    from mlwarden.registry.api.router import WriteRouter

    ctx = WriteContext(store, write, audit, authenticate)
    console: ASGIApp | None = None
    if write.console:
        from mlwarden.registry.console import create_console

        console = create_console(ctx)
    return WriteRouter(read_app, ctx, console, max_target_bytes, max_header_bytes)
