"""What each batch of an epoch is: training (square mosaics, unreadable images replaced) or validation
(Ultralytics' rect shapes, every image needed). The epoch runtime asks; it never branches on which."""

from __future__ import annotations

import numpy as np

from .plan import rect_batch_shapes
from .recovery import BadDataError

__all__ = ["TrainSchedule", "ValSchedule"]


class TrainSchedule:
    """Batches of ``imgsz`` squares; sample ``position`` of ``order`` planned by the planner."""

    augment = True

    def __init__(self, planner, imgsz: int, sampler=None):
        """``sampler``: gives the previous epoch's order (its last images are still in the mosaic buffer)."""
        self.planner, self.imgsz, self.sampler = planner, int(imgsz), sampler
        self._prev = (None, None)  # (epoch, its previous epoch's order)

    def prev_order(self, epoch: int):
        if self.sampler is None or epoch <= 0:
            return None
        if self._prev[0] != epoch:
            self._prev = (epoch, self.sampler.indices(epoch - 1))
        return self._prev[1]

    def set_batch_size(self, batch_size: int) -> None:
        pass  # training plans do not depend on the batch size (the mosaic buffer keeps its length)

    def shape(self, b: int) -> tuple[int, int]:
        return self.imgsz, self.imgsz

    @property
    def max_hw(self) -> int:
        return self.imgsz

    def plans(self, b: int, lo: int, hi: int, epoch: int, order: np.ndarray):
        """The ``PlanBatch`` of positions [lo, hi) (batch ``b``)."""
        return self.planner.plan_batch(epoch, np.arange(lo, hi), order, prev_order=self.prev_order(epoch))

    def replan(self, position: int, epoch: int, order: np.ndarray, exclude: frozenset, error):
        return self.planner.train_plan(epoch, position, order, exclude, self.prev_order(epoch))


class ValSchedule:
    """Every image once, in Ultralytics' order; with ``rect``, sorted by aspect ratio and shaped per batch."""

    augment = False

    def __init__(self, planner, index, imgsz: int, batch_size: int, rect: bool, stride: int, pad: float):
        self.planner, self.index, self.imgsz, self.rect = planner, index, int(imgsz), bool(rect)
        self.stride, self.pad = stride, pad
        self.set_batch_size(batch_size)

    def set_batch_size(self, batch_size: int) -> None:
        n = len(self.index)
        self.batch_size = int(batch_size)
        if self.rect:
            self.order, _, self.shapes = rect_batch_shapes(self.index.shapes, self.batch_size, self.imgsz,
                                                           self.stride, self.pad)
        else:
            self.order = np.arange(n)
            self.shapes = np.full((-(-n // self.batch_size), 2), self.imgsz, int)

    def shape(self, b: int) -> tuple[int, int]:
        return tuple(int(v) for v in self.shapes[b])

    @property
    def max_hw(self) -> int:
        return int(self.shapes.max())

    def plans(self, b: int, lo: int, hi: int, epoch: int, order: np.ndarray):
        return self.planner.val_batch(self.order[lo:hi], self.shape(b))

    def replan(self, position: int, epoch: int, order: np.ndarray, exclude: frozenset, error):
        raise BadDataError(f"validation image unreadable: {self.index.im_files[error.index]} ({error.reason}); "
                           "validation needs every image, fix or remove the file") from None
