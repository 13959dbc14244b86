"""The Hub write API behind the airlock, as huggingface_hub 2.x and transformers call it.

``create_repo``/``delete_repo``, branches and tags, ``preupload``, the LFS batch API
(``basic`` and ``multipart`` transfers, ``verify``) and the NDJSON ``commit`` endpoint
(``create_pr`` -> ``refs/pr/N``). Every pushed commit is quarantined, scanned and checked
against the policy before it exists, and is created pending: readers see it only after
approval (``mlwarden.registry.review``, the console at ``/ui``, or ``mlwarden approve``).

``routes`` returns what ``registry.app.create_app(routes=...)`` mounts in front of the read
API::

    write = WriteSettings(policy=load_policy(...))
    app = create_app(store, settings, routes=routes(store, write))
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from mlwarden.registry.api.context import WriteSettings
from mlwarden.store import Store

__all__ = ["WriteSettings", "routes"]


def routes(store: Store, write: WriteSettings | None = None) -> list[BaseRoute]:
    """The write API and the review console (each only if enabled in ``write``)."""
    from mlwarden.registry.api.context import WriteContext
    from mlwarden.registry.api.router import WriteRoute

    write = write or WriteSettings()
    if not write.enabled and not write.console:
        return []
    ctx = WriteContext(store, write)
    console = None
    if write.console:
        from mlwarden.registry.console import create_console

        console = create_console(ctx)
    return [WriteRoute(ctx, console)]
