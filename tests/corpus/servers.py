"""Real uvicorn servers on loopback for client tests, run in a daemon thread."""

from __future__ import annotations

import threading
import time
from typing import Any


def run_uvicorn(config: Any, what: str = "server") -> tuple[Any, threading.Thread]:
    """Start ``uvicorn.Server(config)`` in a thread; return once it accepts connections."""
    import uvicorn

    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.02)
    return server, thread
