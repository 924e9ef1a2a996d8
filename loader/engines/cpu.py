"""``CpuEngine``: the OpenCV kernel, one task per sample on the loader's painter threads.

Every heavy step (decode, resize, warp, colour conversion) runs in OpenCV code that releases the GIL, so
threads paint in parallel straight into the shared batch buffer.
"""

from __future__ import annotations

import logging

from ..kernels import hsv, jpeg, opencv, resize, warp
from ..plan import PlanBatch
from .base import Engine

__all__ = ["CpuEngine"]

LOG = logging.getLogger("loader")


def _single_threaded_opencv() -> None:
    """Painter threads are the parallelism: OpenCV's own pool on top only oversubscribes the cores
    (an ad-hoc run: 124 -> 144 img/s with 2 workers on 2 cores). Ultralytics sets the same at import."""
    import cv2

    if cv2.getNumThreads() > 1:
        LOG.debug("cv2.setNumThreads(1): the painter threads do the parallel work")
        cv2.setNumThreads(1)


class CpuEngine(Engine):
    name, device = "cpu", "cpu"

    def __init__(self, source, workers: int):
        from ..allocator import tune_allocator

        self.source = source
        self.allocator_tuned = tune_allocator()  # decode-size buffers stay in the heap (see loader/allocator.py)
        if workers > 1:
            _single_threaded_opencv()

    def paint(self, plans, out) -> None:
        """Paint a ``PlanBatch`` or a list of plans into ``out`` (B, H, W, 3)."""
        plans = plans.plans() if isinstance(plans, PlanBatch) else plans
        for plan, o in zip(plans, out, strict=True):
            opencv.paint(plan, self.source.get, o)

    def stats(self) -> dict:
        return {"allocator_tuned": self.allocator_tuned, "hsv_kernel": hsv.kernel(), "resize_kernel": resize.kernel(),
                "warp_kernel": warp.kernel(), "warp_routes": warp.routes(), "jpeg_decoder": jpeg.kernel(),
                "jpeg_declined": jpeg.declined()}

    def tasks(self, work) -> list:
        return [(self._sample, (work, j)) for j in range(len(work))]

    def _sample(self, work, j: int) -> None:
        """Sample ``j`` of the batch, painted in a painter thread; the first task to arrive plans the whole batch
        and works out its geometry on arrays (``BatchGeometry``: off the consumer's thread, once per batch); an
        unreadable image is replaced by the work's policy (a replacement plan is painted on its own)."""
        geo = work.derived("opencv", opencv.BatchGeometry)
        step = lambda p: geo.paint_sample(j, self.source.get, work.out[j]) if p is work.PLANNED \
            else opencv.paint(p, self.source.get, work.out[j])  # noqa: E731
        work.attempt(j, step, work.PLANNED if geo.simple[j] else None)
