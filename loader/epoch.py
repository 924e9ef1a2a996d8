"""The epoch runtime (as FFCV splits its epoch iterator from its ``Loader``): sampler position -> batch work ->
engine tasks on the painter threads -> the Ultralytics batch dict, with prefetch, reset and the bad-data check.

Iteration is lazy (nothing is planned until the first ``next()``), a newer iterator (or ``reset()``) retires
older ones, and the sampler advances only by the batches the consumer received, so a resume restarts at the
first sample that did not reach the training loop.
"""

from __future__ import annotations

import threading

import numpy as np

from ._closing import Closing
from .batch import assemble
from .pool import OrderedPool, WorkerError
from .recovery import BadDataError

__all__ = ["BatchWork", "EpochRunner"]


class _Planned:
    """``BatchWork.PLANNED``: the batch's own plan of a sample, not built as a ``Plan`` object."""

    def __repr__(self) -> str:
        return "PLANNED"


class BatchWork:
    """One batch to produce, as an engine sees it: positions [lo, hi) of ``order`` in ``epoch``, the buffer its
    pixels go to (``out``: (B, H, W, 3)), its plans (``batch()``: one ``PlanBatch``, planned once by the first
    caller), ``attempt`` (the bad-data policy) and ``final()``, the plans as painted (replacements included)."""

    # ``attempt(j, step, PLANNED)``: step gets this for the planned sample, a Plan for a replacement
    PLANNED = _Planned()

    def __init__(self, b: int, lo: int, hi: int, out, epoch: int, order: np.ndarray, schedule, policy):
        self.b, self.lo, self.hi, self.out, self.epoch, self.order = b, lo, hi, out, epoch, order
        self.schedule, self.policy = schedule, policy
        self.event = None  # an engine on a GPU: the CUDA event its work on this batch records
        self._batch = None
        self._derived: dict = {}
        self._replaced: dict = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.hi - self.lo

    def batch(self):
        with self._lock:
            if self._batch is None:
                self._batch = self.schedule.plans(self.b, self.lo, self.hi, self.epoch, self.order)
            return self._batch

    def derived(self, name: str, make):
        """``make(batch())``, computed once for this batch by the first caller (an engine's per-batch arrays)."""
        batch = self.batch()
        with self._lock:
            if name not in self._derived:
                self._derived[name] = make(batch)
            return self._derived[name]

    def attempt(self, j: int, step, plan=None):
        """``step(plan)`` for sample ``j`` (its plan, or the one given, or ``PLANNED``: an engine that paints the
        batch's plans from its arrays builds no ``Plan``); an unreadable image is replaced (training) or stops
        validation. Returns the plan that was painted."""
        plan = self.batch().plan(j) if plan is None else plan
        position = self.lo + j
        done = self.policy.attempt(
            step, plan, lambda exclude, error: self.schedule.replan(position, self.epoch, self.order, exclude, error),
            position, self.epoch)
        if done is not plan:
            self._replaced[j] = done
        return done

    def final(self):
        """The ``PlanBatch`` as painted: the planned one, with any replaced samples swapped in."""
        return self.batch().with_plans(self._replaced)


class EpochRunner(Closing):
    """Batches of ``batch_size`` from ``sampler`` through ``engine``, ``prefetch`` ahead on ``workers`` threads.

    ``out_buffer(shape)`` gives each batch its buffer (the engine's, or the loader's ring); ``im_files`` names
    the images of the batch dict.
    """

    def __init__(self, sampler, schedule, engine, policy, out_buffer, im_files, workers: int, prefetch: int,
                 batch_size: int):
        self.sampler, self.schedule, self.engine, self.policy = sampler, schedule, engine, policy
        self.out_buffer, self.im_files = out_buffer, im_files
        self.workers, self.prefetch, self.batch_size = int(workers), int(prefetch), int(batch_size)
        self.samples = 0
        self._pool: OrderedPool | None = None
        self._generation = 0
        self.closed = False

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def _span(self, b: int, n: int) -> tuple[int, int]:
        return b * self.batch_size, min((b + 1) * self.batch_size, n)

    def _ensure_pool(self) -> OrderedPool:
        if self.closed:
            raise RuntimeError("loader is closed")
        if self._pool is None:
            self._pool = OrderedPool(self.workers, self.prefetch, name="loader-paint")
        return self._pool

    def _submit(self, pool: OrderedPool, b: int, epoch: int, order: np.ndarray) -> None:
        lo, hi = self._span(b, len(order))
        h, w = self.schedule.shape(b)
        work = BatchWork(b, lo, hi, self.out_buffer((hi - lo, h, w, 3)), epoch, order, self.schedule, self.policy)
        pool.submit_group(work, self.engine.tasks(work))

    def __iter__(self):
        self._generation += 1
        generation = self._generation
        pool = self._ensure_pool()
        pool.drain()
        if self.sampler.position >= len(self.sampler):  # last epoch finished: move on, as a shuffling loader does
            self.sampler.set_epoch(self.sampler.epoch + 1)
        if self.sampler.position % self.batch_size:
            raise RuntimeError(f"sampler position {self.sampler.position} is not at a batch boundary")
        order, epoch, nb = self.sampler.indices(), self.sampler.epoch, len(self)
        next_b = first = self.sampler.position // self.batch_size
        if first == 0:
            self.policy.start_epoch()
        try:
            for b in range(first, nb):
                while next_b < nb and not pool.full:
                    self._submit(pool, next_b, epoch, order)
                    next_b += 1
                try:
                    work, results = pool.next_group()
                except WorkerError as e:
                    if isinstance(e.__cause__, BadDataError):  # a data problem, already explained: no traceback
                        raise e.__cause__ from None
                    raise
                assert work.b == b, (work.b, b)
                plans = work.final()
                self.policy.check(len(self.sampler), epoch, final=b == nb - 1)
                batch = assemble(plans, work.out, self.im_files)
                self.engine.hand_over(work, batch)
                del work
                self.sampler.advance(len(plans))
                self.samples += len(plans)
                if b == nb - 1:
                    self.engine.end_of_epoch(self.samples)
                yield batch
                if generation != self._generation:  # reset() or a newer iterator took over
                    return
        finally:
            if generation == self._generation and self._pool is not None:
                self._pool.drain()

    def reset(self) -> None:
        """Drop prefetched batches; the next ``iter()`` re-plans from the sampler's position."""
        self._generation += 1
        if self._pool is not None:
            self._pool.drain()

    def close(self) -> None:
        self.closed = True
        if self._pool is not None:
            self._pool.close()
            self._pool = None
