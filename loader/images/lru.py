"""The decoded-image buffer: recent training-size images (the mosaic partners) for every painter of the
process, bounded in bytes, each decoded once even when several threads ask for it at the same time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np

__all__ = ["ImageCache"]


class ImageCache:
    """LRU of decoded images keyed by dataset index, bounded in bytes; thread-safe, decode-once.

    Holds host arrays or device tensors (the DALI engine's tiles on a GPU): anything with ``nbytes``."""

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def get(self, key: int, load):
        """The cached image for ``key``, or ``load()``'s result (cached if it fits)."""
        with self._lock:
            im = self._items.get(key)
            if im is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return im
            fut = self._pending.get(key)
            owner = fut is None
            if owner:
                fut = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if not owner:
            return fut.result()
        try:
            im = load()
        except BaseException as e:
            with self._lock:
                del self._pending[key]
            fut.set_exception(e)
            raise
        if isinstance(im, np.ndarray) and im.flags.writeable:  # (device tensors are never painted on either)
            im.setflags(write=False)  # shared between threads and samples: never painted on
        with self._lock:
            del self._pending[key]
            if key in self._items:  # replaced while it loaded (e.g. by its GPU upload): keep that one
                im = self._items[key]
            else:
                self._insert(key, im)
        fut.set_result(im)
        return im

    def replace(self, key: int, image) -> None:
        """Hold ``image`` for ``key`` instead of what is held (e.g. its upload to the GPU), or add it if it fits."""
        if isinstance(image, np.ndarray) and image.flags.writeable:
            image.setflags(write=False)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._insert(key, image)

    def _insert(self, key: int, image) -> None:
        """Under the lock: add ``image`` if it fits the budget, evicting the least recently used."""
        if image.nbytes <= self.budget:
            self._items[key] = image
            self.bytes += image.nbytes
            while self.bytes > self.budget:
                _, gone = self._items.popitem(last=False)
                self.bytes -= gone.nbytes
                self.evictions += 1

    def take(self, keys) -> dict:
        """The held images among ``keys`` (marked recently used): references the caller keeps, so an eviction
        after this moment cannot take them away from it."""
        with self._lock:
            out = {}
            for k in keys:
                im = self._items.get(k)
                if im is not None:
                    self._items.move_to_end(k)
                    out[k] = im
            self.hits += len(out)
            return out

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def stats(self) -> dict:
        return {"items": len(self._items), "bytes": self.bytes, "budget": self.budget, "hits": self.hits,
                "misses": self.misses, "evictions": self.evictions}
