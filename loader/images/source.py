"""One image source per loader: ``get(i)`` is image ``i`` at Ultralytics' load size, or ``UnreadableImage``.

The stores sit behind it, so engines, tests and benchmarks never see which one answers:

* ``cache="ram"``: the whole data set in one shared-memory arena per node (``ram.RamArena``);
* otherwise recent images in one bounded, decode-once buffer (``lru.ImageCache``, sized for Ultralytics'
  mosaic buffer), filled from the disk cache (``cache="disk"``, ``disk.DiskCache``) or by decoding.

The source also owns the set of images found unreadable at training time: each is logged once with its
file, and never read again.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .._closing import Closing
from .decode import decode_resized, read_bytes
from .lru import ImageCache

__all__ = ["ImageSource", "UnreadableImage"]

LOG = logging.getLogger("loader.images")


class UnreadableImage(OSError):
    """Image ``index`` cannot be read or decoded (deleted, truncated or corrupted after indexing)."""

    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


class ImageSource(Closing):
    """Training-size images of ``index`` (a ``DatasetIndex``), ``load_shapes`` (n, 2) their (h, w) for ``imgsz``.

    ``store``: None, ``"ram"`` or ``"disk"``; ``budget_bytes``: the buffer's bound; ``reduced_decode``: the
    DCT-reduced JPEG decode mode (``decode.REDUCE_MODES``; validation uses False); ``workers``: threads
    that build a RAM or disk cache; ``key``: what names this data set's caches.
    """

    def __init__(self, index, load_shapes: np.ndarray, *, imgsz: int, budget_bytes: int, store: str | None = None,
                 reduced_decode: bool | str = False, workers: int = 1, key: str = ""):
        self.index, self.load_shapes, self.reduced_decode = index, load_shapes, reduced_decode
        self.buffer = ImageCache(budget_bytes)
        self._unreadable: dict[int, str] = {}
        self.unreadable_mask = np.zeros(len(index), bool)  # the same set, for questions about whole batches
        self._lock = threading.Lock()
        self.disk = self.arena = None
        # the decode mode names the caches too: a cache built with another mode holds other pixels
        key = f"{key}|decode={reduced_decode}"
        if store == "disk":
            from .disk import DiskCache

            self.disk = DiskCache(key, imgsz)
            built = self.disk.build(((index.im_files[i], self.load_hw(i), i) for i in range(len(index))),
                                    self.decode, workers)
            if built:
                LOG.info("disk cache: %d images encoded at training size in %s", built, self.disk.dir)
        elif store == "ram":
            from .ram import RamArena

            def decode_or_none(i):
                try:
                    return self.decode(i)
                except OSError as e:
                    self._unreadable[i] = str(e)
                    self.unreadable_mask[i] = True
                    return None

            self.arena = RamArena(f"{key}|{imgsz}", load_shapes, decode_or_none, workers=workers)
            for i in self.arena.unreadable.tolist():
                self._unreadable.setdefault(i, "unreadable when the RAM cache was built")
                self.unreadable_mask[i] = True
        elif store is not None:
            raise ValueError(f"store must be None, 'ram' or 'disk', got {store!r}")

    def __len__(self) -> int:
        return len(self.index)

    def load_hw(self, i: int) -> tuple[int, int]:
        h, w = self.load_shapes[i]
        return int(h), int(w)

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` decoded and resized by OpenCV, uncached (``DecodeError`` if it cannot be)."""
        f = self.index.im_files[i]
        return decode_resized(read_bytes(f), tuple(self.index.shapes[i]), self.load_hw(i),
                              bool(self.index.formats[i] == 1), self.reduced_decode, f)

    def get(self, i: int):
        """Image ``i`` (BGR uint8 (h, w, 3); read-only array or device tensor) or ``UnreadableImage``."""
        reason = self._unreadable.get(i)
        if reason is not None:
            raise UnreadableImage(i, reason)
        if self.arena is not None:
            return self.arena.get(i)
        load = (lambda: self.disk.get(self.index.im_files[i], self.load_hw(i), lambda: self.decode(i))) \
            if self.disk is not None else (lambda: self.decode(i))
        try:
            return self.buffer.get(i, load)
        except OSError as e:  # DecodeError, or the file vanished / cannot be read
            with self._lock:
                if i not in self._unreadable:
                    self._unreadable[i] = str(e)
                    self.unreadable_mask[i] = True
                    LOG.warning("unreadable at training time: %s (%s)", self.index.im_files[i], e)
            raise UnreadableImage(i, str(e)) from None

    def put(self, i: int, image) -> None:
        """An image decoded elsewhere (the DALI decoder: host array or device tensor) into the buffer."""
        self.buffer.get(i, lambda: image)

    def take(self, indices) -> dict:
        """The buffer's images among ``indices``, as references the caller holds (none with a RAM arena, which
        never evicts): what one batch keeps while it is painted."""
        if self.arena is not None:
            return {}
        return self.buffer.take(int(i) for i in indices)

    def __contains__(self, i: int) -> bool:
        """Whether ``get(i)`` is answered without decoding."""
        return self.arena is not None or i in self.buffer

    def is_unreadable(self, i: int) -> bool:
        return i in self._unreadable

    @property
    def unreadable(self) -> dict[int, str]:
        """Images found unreadable so far: index -> reason (a copy)."""
        with self._lock:
            return dict(self._unreadable)

    @property
    def decodes(self) -> int:
        """Images decoded (or read from the disk cache) into the buffer so far."""
        return self.buffer.misses

    @property
    def cache_bytes(self) -> int:
        """Bytes of the whole-data-set store (RAM arena or disk cache), 0 without one."""
        return self.arena.nbytes if self.arena is not None else self.disk.nbytes() if self.disk is not None else 0

    def stats(self) -> dict:
        return self.buffer.stats()

    def close(self) -> None:
        self.buffer.clear()
        if self.disk is not None:
            self.disk.flush()
        if self.arena is not None:
            self.arena.close()
