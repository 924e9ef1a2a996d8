"""``OrderedPool``: results in submission order, a failure raised as soon as it happens, one wake-up per group."""

from __future__ import annotations

import threading
import time

import pytest

from loader.pool import OrderedPool, WorkerError


def _voluntary_switches() -> int:
    """This thread's voluntary context switches so far (each time it slept and was woken)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def test_results_come_in_submission_order():
    with OrderedPool(4) as pool:
        pool.submit_group("g", [(lambda k: (time.sleep(0.002 * (8 - k)), k)[1], (k,)) for k in range(8)])
        key, results = pool.next_group()
    assert key == "g" and results == list(range(8))


def test_a_failure_is_raised_while_earlier_tasks_still_run():
    """Task 0 blocks until the consumer has the error of task 1: a consumer that waited for the tasks in order would
    sit on task 0 until the safety timer let it go."""
    release = threading.Event()
    timer = threading.Timer(5.0, release.set)
    timer.start()

    def boom():
        raise ZeroDivisionError("painter bug")

    try:
        with OrderedPool(2) as pool:
            pool.submit_group("g", [(release.wait, ()), (boom, ())])
            with pytest.raises(WorkerError, match="task 1 of group 'g' failed: ZeroDivisionError: painter bug"):
                pool.next_group()
            assert not release.is_set(), "the error waited for task 0"
            release.set()
    finally:
        timer.cancel()
        release.set()


def test_a_group_past_its_timeout_raises():
    release = threading.Event()
    try:
        with OrderedPool(1) as pool:
            pool.submit_group("g", [(release.wait, ())])
            with pytest.raises(TimeoutError):
                pool.next_group(timeout=0.05)
            release.set()
    finally:
        release.set()


def test_the_consumer_wakes_once_per_group_not_per_task():
    """32 tasks finishing one after another over ~100 ms: waiting on each in turn woke the consumer ~32 times (each a
    context switch and a GIL hand-over the painters paid for)."""
    with OrderedPool(1) as pool:
        pool.submit_group("warm", [(time.sleep, (0.001,))])
        pool.next_group()
        pool.submit_group("g", [(time.sleep, (0.003,)) for _ in range(32)])
        v0 = _voluntary_switches()
        _, results = pool.next_group()
        woke = _voluntary_switches() - v0
    assert len(results) == 32
    assert woke <= 8, f"the consumer was woken {woke} times for one group of 32 tasks"
