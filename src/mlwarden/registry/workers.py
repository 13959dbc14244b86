"""``serve --workers N``: N server processes on one host, one port.

The supervisor binds one listening socket per worker with ``SO_REUSEPORT`` (the kernel
spreads new connections evenly across them; a shared socket would let one event loop
accept a whole burst) and forks the workers before anything else runs: no database
connection, thread or client is ever shared across a fork, because each worker builds
its own application. A worker that dies is replaced, and its socket with it; SIGTERM
or SIGINT stops the workers gracefully (in-flight downloads finish, up to the graceful
shutdown limit) and then the supervisor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

RESPAWN_WINDOW = 30.0  # seconds
MAX_RESPAWNS = 10  # per window: a worker that cannot start stops the supervisor


def listen_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` sockets on one port (``port`` 0: the first bind picks it). Raises OSError."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    reuseport = n > 1 and hasattr(socket, "SO_REUSEPORT")
    socks: list[socket.socket] = []
    try:
        for _ in range(n if reuseport else 1):
            s = socket.socket(family, kind, proto)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr if not socks[1:] else (addr[0], socks[0].getsockname()[1],
                                               *addr[2:]))
            s.listen(2048)
            s.set_inheritable(True)
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def supervise(socks: list[socket.socket], workers: int,
              run_worker: Callable[[socket.socket], None]) -> int:
    """Fork ``workers`` processes, each running ``run_worker(its socket)``; returns the exit
    status once they are all gone."""
    multiproc_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        multiproc_dir = tempfile.mkdtemp(prefix="mlwarden-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    shared = len(socks) == 1
    children: dict[int, socket.socket] = {}
    stopping = False
    respawns: list[float] = []

    def spawn(sock: socket.socket) -> None:
        pid = os.fork()
        if pid == 0:  # worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                for other in socks:
                    if other is not sock:
                        other.close()
                run_worker(sock)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # report, never unwind into the supervisor's code
                print(f"mlwarden: worker {os.getpid()} failed: {exc}", file=sys.stderr)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        children[pid] = sock
        if not shared:  # the worker owns it now; a dead worker's socket leaves the group
            sock.close()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    template = socks[0]
    address = template.getsockname()  # for replacement sockets, once the originals close
    family, kind, proto = template.family, template.type, template.proto
    for i in range(workers):
        spawn(socks[0] if shared else socks[i])
    status = 0
    try:
        while children:
            try:
                pid, wstatus = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            children.pop(pid, None)
            with contextlib.suppress(Exception):
                from mlwarden.registry.metrics import mark_worker_dead

                mark_worker_dead(pid)
            code = os.waitstatus_to_exitcode(wstatus)
            if stopping:
                continue
            print(f"mlwarden: worker {pid} exited ({code}); starting another", file=sys.stderr)
            now = time.monotonic()
            respawns[:] = [t for t in respawns if now - t < RESPAWN_WINDOW] + [now]
            if len(respawns) > MAX_RESPAWNS:
                print("mlwarden: workers keep failing; stopping", file=sys.stderr)
                status = 1
                stop(signal.SIGTERM, None)
                continue
            if shared:
                spawn(socks[0])
            else:
                s = socket.socket(family, kind, proto)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(address)
                s.listen(2048)
                socks.append(s)
                spawn(s)
    finally:
        if shared:
            socks[0].close()
        if multiproc_dir is not None:
            shutil.rmtree(multiproc_dir, ignore_errors=True)
    return status
