"""What Ultralytics' trainer and validator read from a loader, on top of ``DetectionLoader``.

The trainer touches (design.md section 3): ``len``, a lazy ``__iter__``, ``batch_size``,
``num_workers``, ``sampler`` (``len``, ``set_epoch``), ``reset()``, ``close()`` and
``dataset`` (``len``, ``labels``, ``im_files``, ``data``, ``close_mosaic(hyp)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loader import DetectionLoader
from loader._closing import Closing

__all__ = ["UltralyticsLoader", "UltralyticsDataset"]


class _Ordered(Sequence):
    """``seq[order[k]]`` without materializing it (val: images in aspect-ratio order)."""

    def __init__(self, seq, order: np.ndarray):
        self._seq, self._order = seq, order

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        return self._seq[int(self._order[k])]


class UltralyticsDataset:
    """``train_loader.dataset`` as the trainer sees it; labels and files in the loader's image order."""

    def __init__(self, loader: DetectionLoader, data: dict):
        self._loader, self.data = loader, data
        order = loader.val_order if not loader.augment else np.arange(len(loader.index))
        self.labels = _Ordered(loader.index.labels, order)
        self.im_files = _Ordered(loader.index.im_files, order)

    def __len__(self) -> int:
        return len(self._loader.index)

    def close_mosaic(self, hyp=None) -> None:
        """Ultralytics' close_mosaic: mosaic, mixup, cutmix, copy_paste off from the next planned batch."""
        self._loader.close_mosaic()


class UltralyticsLoader(Closing):
    """A ``DetectionLoader`` dressed as Ultralytics' ``InfiniteDataLoader``."""

    def __init__(self, loader: DetectionLoader, data: dict):
        self.loader = loader
        self.dataset = UltralyticsDataset(loader, data)

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    @property
    def num_workers(self) -> int:
        return self.loader.num_workers

    @property
    def sampler(self):
        return self.loader.sampler

    def reset(self) -> None:
        self.loader.reset()

    def close(self) -> None:
        self.loader.close()
