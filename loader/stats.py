"""Named stage timers (as SPDL reports each stage's time): seconds and calls per stage, summed over threads."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

__all__ = ["StageTimes"]


class StageTimes:
    """``with times("decode"): ...`` adds the block's wall time to stage "decode"; ``snapshot()`` reads them all."""

    def __init__(self):
        self._s: dict[str, float] = defaultdict(float)
        self._n: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self._s[stage] += dt
                self._n[stage] += 1

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {k: {"s": self._s[k], "calls": self._n[k]} for k in self._s}

    def reset(self) -> None:
        with self._lock:
            self._s.clear()
            self._n.clear()
