"""Executors run ``worker.scan_repo`` somewhere: local processes, or Ray tasks on a local
instance (``--ray auto``) or a cluster (``--ray ADDRESS``). The coordinator in ``run.py``
is the same for both; an executor only submits jobs and reports what finished, including
jobs whose worker died (they come back as :class:`WorkerLost`)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.managers import BaseManager
from typing import Any, Protocol

from mlwarden.fleet.worker import WorkerConfig, scan_repo
from mlwarden.scan.sources.polite import LocalLimiter, Politeness

Job = tuple[Any, int, bool]  # (RepoTask, attempt, final)


class WorkerLost(Exception):
    """The process or Ray worker running a job died before answering."""


class Executor(Protocol):
    capacity: int

    def submit(self, job: Job) -> object: ...

    def completed(self, timeout: float) -> list[tuple[object, object]]:
        """(handle, outcome or exception) for jobs that finished."""
        ...

    def close(self) -> None: ...


class _LimiterManager(BaseManager):
    pass


_LimiterManager.register("Limiter", LocalLimiter,
                         exposed=("try_acquire", "release", "pause"))


class LocalExecutor:
    """A pool of spawned processes sharing one limiter (served by a manager process).
    A dead worker breaks the pool: every job it held is reported lost and the pool is
    rebuilt."""

    def __init__(self, workers: int, cfg: WorkerConfig, politeness: Politeness) -> None:
        self.capacity = max(1, workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._mgr = _LimiterManager(ctx=self._ctx)
        self._mgr.start()
        limiter = self._mgr.Limiter(politeness)  # type: ignore[attr-defined]
        self.cfg = WorkerConfig(cfg.cache_url, limiter, politeness, cfg.hash)
        self._pool = self._new_pool()
        self._futures: dict[Future[Any], object] = {}
        self._lost: list[tuple[object, object]] = []

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.capacity, mp_context=self._ctx)

    def submit(self, job: Job) -> object:
        handle = object()
        try:
            fut = self._pool.submit(scan_repo, *job, self.cfg)
        except BrokenProcessPool:
            self._rebuild()
            fut = self._pool.submit(scan_repo, *job, self.cfg)
        self._futures[fut] = handle
        return handle

    def _rebuild(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def completed(self, timeout: float) -> list[tuple[object, object]]:
        out, self._lost = self._lost, []
        if not self._futures:
            return out
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        broken = False
        for fut in done:
            handle = self._futures.pop(fut)
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                broken = True
                out.append((handle, WorkerLost("worker process died")))
            else:
                out.append((handle, exc if exc is not None else fut.result()))
        if broken:
            for fut, handle in list(self._futures.items()):  # the rest of a broken pool
                out.append((handle, WorkerLost("worker process died")))
                del self._futures[fut]
            self._rebuild()
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._mgr.shutdown()


class RayLimiter:
    """The Limiter protocol over a Ray actor shared by every task of the run."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def try_acquire(self, endpoint: str) -> float:
        import ray

        return float(ray.get(self.actor.try_acquire.remote(endpoint)))

    def release(self, endpoint: str) -> None:
        self.actor.release.remote(endpoint)

    def pause(self, endpoint: str, seconds: float) -> None:
        import ray

        ray.get(self.actor.pause.remote(endpoint, seconds))


class RayExecutor:
    """Ray tasks; Ray itself re-runs a task whose worker died (``max_retries``), and one
    that still cannot finish comes back as WorkerLost for the coordinator's attempts."""

    def __init__(self, address: str, workers: int, cfg: WorkerConfig,
                 politeness: Politeness) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--ray needs Ray: pip install 'mlwarden[ray]'") from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address == "auto-local":
                ray.init(num_cpus=max(1, workers), **kwargs)
            else:
                ray.init(address=address, **kwargs)
        self.capacity = max(1, workers if address == "auto-local"
                            else int(ray.cluster_resources().get("CPU", workers)))  # type: ignore[no-untyped-call]
        actor_cls = ray.remote(num_cpus=0)(LocalLimiter)
        self._actor = actor_cls.remote(politeness)
        self.cfg = WorkerConfig(cfg.cache_url, RayLimiter(self._actor), politeness, cfg.hash)
        self._fn: Any = ray.remote(max_retries=3, retry_exceptions=False)(scan_repo)
        self._refs: dict[Any, object] = {}

    def submit(self, job: Job) -> object:
        handle = object()
        ref = self._fn.remote(*job, self.cfg)
        self._refs[ref] = handle
        return handle

    def completed(self, timeout: float) -> list[tuple[object, object]]:
        ray = self._ray
        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        out: list[tuple[object, object]] = []
        for ref in ready:
            handle = self._refs.pop(ref)
            try:
                out.append((handle, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                out.append((handle, cause if isinstance(cause, Exception) else exc))
            except ray.exceptions.RayError as exc:  # worker crashed, node died, ...
                out.append((handle, WorkerLost(f"{type(exc).__name__}: {str(exc)[:200]}")))
        return out

    def close(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()


def make_executor(ray: str | None, workers: int, cfg: WorkerConfig,
                  politeness: Politeness) -> Executor:
    n = workers or max(1, os.cpu_count() or 1)
    if ray is None:
        return LocalExecutor(n, cfg, politeness)
    return RayExecutor("auto-local" if ray == "auto" else ray, n, cfg, politeness)
