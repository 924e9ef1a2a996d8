"""Ordered, bounded, thread-based work pool.

Threads, not processes: every heavy step of painting (JPEG decode, resize, warp,
colour conversion) runs in OpenCV/numpy code that releases the GIL, so threads run in
parallel while writing straight into shared batch buffers: no pickling, no second
copy of a 300 MB batch through shared memory, one image cache for all workers
(``benchmarks/`` measures the scaling). A worker's exception is re-raised in the
consumer with the worker's traceback attached.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from ._closing import Closing

__all__ = ["OrderedPool", "WorkerError"]


class WorkerError(RuntimeError):
    """A task failed in a worker thread; ``__cause__`` is the original exception."""


class OrderedPool(Closing):
    """Submit groups of tasks; collect the groups' results in submission order.

    At most ``max_groups`` groups are in flight (the prefetch bound). ``close()`` cancels
    what has not started, waits for running tasks, and joins every thread.
    """

    def __init__(self, workers: int, max_groups: int = 2, name: str = "loader"):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_groups < 1:
            raise ValueError(f"max_groups must be >= 1, got {max_groups}")
        self.workers, self.max_groups = int(workers), int(max_groups)
        self._ex = ThreadPoolExecutor(self.workers, thread_name_prefix=name)
        self._groups: deque[tuple[object, list[Future]]] = deque()
        self._closed = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def full(self) -> bool:
        return len(self._groups) >= self.max_groups

    def submit_group(self, key, calls) -> None:
        """``calls``: iterable of (fn, args) run in parallel; results come back as one list."""
        if self._closed:
            raise RuntimeError("pool is closed")
        futures = [self._ex.submit(fn, *args) for fn, args in calls]
        self._groups.append((key, futures))

    def next_group(self, timeout: float | None = None):
        """(key, results) of the oldest group; waits for it. Re-raises a task's failure as :class:`WorkerError`."""
        if not self._groups:
            raise IndexError("no group in flight")
        key, futures = self._groups.popleft()
        results = []
        for k, f in enumerate(futures):
            try:
                results.append(f.result(timeout=timeout))
            except (KeyboardInterrupt, SystemExit):  # raised in this (consumer) thread while it waited
                for g in futures:
                    g.cancel()
                raise
            except BaseException as e:  # noqa: BLE001 - re-raised with context below
                for g in futures[k + 1:]:
                    g.cancel()
                tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                raise WorkerError(f"worker task {k} of group {key!r} failed: {type(e).__name__}: {e}\n"
                                  f"--- worker traceback ---\n{tb}") from e
        return key, results

    def drain(self) -> None:
        """Cancel queued work and wait for running tasks (keeps the threads)."""
        while self._groups:
            _, futures = self._groups.popleft()
            for f in futures:
                f.cancel()
            for f in futures:
                if not f.cancelled():
                    try:
                        f.result()
                    except BaseException:  # noqa: BLE001 - discarded work
                        pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.drain()
        self._ex.shutdown(wait=True, cancel_futures=True)
