"""The fork guard: an HDF5 sandbox forks only between HTTP requests of the remote scan's
threads, because huggingface_hub closes its shared client in every child and a lock held
by another thread at fork time would deadlock the child (seen as hdf5-parser-timeout)."""

from __future__ import annotations

import threading
import time

from mlwarden.util.forkguard import ForkGuard


def test_fork_waits_for_requests_in_flight_and_blocks_new_ones() -> None:
    guard = ForkGuard()
    events: list[str] = []
    in_request = threading.Event()
    fork_waiting = threading.Event()

    def request(name: str, hold: float) -> None:
        with guard.network():
            events.append(f"{name} start")
            in_request.set()
            time.sleep(hold)
            events.append(f"{name} end")

    def fork() -> None:
        fork_waiting.set()
        with guard.fork():
            events.append("fork")

    a = threading.Thread(target=request, args=("a", 0.3))
    a.start()
    assert in_request.wait(5)
    f = threading.Thread(target=fork)
    f.start()
    assert fork_waiting.wait(5)
    time.sleep(0.05)  # the fork is now waiting for request a
    b = threading.Thread(target=request, args=("b", 0.0))
    b.start()  # a request arriving while a fork waits goes after the fork
    for t in (a, f, b):
        t.join(5)
        assert not t.is_alive()
    assert events == ["a start", "a end", "fork", "b start", "b end"]


def test_requests_run_together_without_a_fork() -> None:
    guard = ForkGuard()
    inside = threading.Barrier(3, timeout=5)

    def request() -> None:
        with guard.network():
            inside.wait()  # all three are inside at once

    threads = [threading.Thread(target=request) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
