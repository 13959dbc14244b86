"""Fork while no thread is inside an HTTP request.

Readers that sandbox a parser in a forked child (HDF5) run in the remote scan's threads,
beside threads doing range reads through huggingface_hub's shared httpx client. A child
inherits that client's locks as they were at fork time, and huggingface_hub closes the
client in every child (``os.register_at_fork(after_in_child=close_session)``): a lock
held by another thread then deadlocks the child, and the file ends as a parser timeout.
Network code holds :data:`GUARD` shared for each request; a fork holds it exclusively, so
it happens between requests. Waiting writers block new readers (requests are short)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ForkGuard:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def network(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def fork(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


GUARD = ForkGuard()
