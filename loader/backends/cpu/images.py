"""Decode an image at the size Ultralytics trains on, and keep recent ones in one bounded cache.

``load_size`` is Ultralytics' ``load_image`` rule (long side to imgsz, ``ceil``, capped).
``decode_resized`` reaches that size with the cheapest exact-enough route: a JPEG is
decoded DCT-reduced (1/2, 1/4, 1/8) when the reduced image is still at least as large as
the target, then resized with INTER_LINEAR like Ultralytics. The cache holds resized
images for every worker thread of the process, bounded in bytes, and decodes an image
once even when several threads ask for it at the same time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future

import cv2
import numpy as np

from ...plan import load_size

__all__ = ["DecodeError", "load_size", "reduction_for", "decode_resized", "ImageCache"]

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


class DecodeError(OSError):
    """An indexed image could not be read or decoded at training time."""


def reduction_for(h0: int, w0: int, h: int, w: int) -> int:
    """Largest DCT reduction factor whose output is still at least (h, w)."""
    for f in (8, 4, 2):
        if -(-h0 // f) >= h and -(-w0 // f) >= w:
            return f
    return 1


def decode_resized(data: np.ndarray | bytes, hw0: tuple[int, int], hw: tuple[int, int], jpeg: bool,
                   reduce: bool = True, path: str = "<bytes>") -> np.ndarray:
    """BGR uint8 (h, w, 3) image from encoded bytes; ``hw0`` is the upright size from the index."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise DecodeError(f"{path}: file is empty")
    f = reduction_for(*hw0, *hw) if (jpeg and reduce) else 1
    im = cv2.imdecode(buf, _REDUCED[f])
    if im is None:
        raise DecodeError(f"{path}: image does not decode")
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    elif im.shape[2] == 4:
        im = cv2.cvtColor(im, cv2.COLOR_BGRA2BGR)
    if im.dtype != np.uint8:
        im = (im >> 8).astype(np.uint8)
    eh, ew = -(-hw0[0] // f), -(-hw0[1] // f)
    if abs(im.shape[0] - eh) > 1 or abs(im.shape[1] - ew) > 1:
        raise DecodeError(f"{path}: decoded size {im.shape[:2]} differs from the indexed size {hw0} "
                          f"(file changed since indexing?)")
    if im.shape[:2] != tuple(hw):
        im = cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return im


def read_bytes(path: str) -> np.ndarray:
    try:
        return np.fromfile(path, np.uint8)
    except OSError as e:
        raise DecodeError(f"{path}: cannot read ({e})") from None


class ImageCache:
    """LRU of decoded images keyed by dataset index, bounded in bytes; thread-safe, decode-once.

    Holds numpy arrays, or CUDA tensors (the DALI engine's tiles on a GPU): anything with ``nbytes``."""

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pending: dict[int, Future] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def get(self, key: int, load) -> np.ndarray:
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
        if isinstance(im, np.ndarray) and im.flags.writeable:  # (the DALI engine on a GPU caches CUDA tensors)
            im.setflags(write=False)  # shared between threads and samples: never painted on
        with self._lock:
            del self._pending[key]
            if im.nbytes <= self.budget:
                self._items[key] = im
                self.bytes += im.nbytes
                while self.bytes > self.budget:
                    _, old = self._items.popitem(last=False)
                    self.bytes -= old.nbytes
                    self.evictions += 1
        fut.set_result(im)
        return im

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
