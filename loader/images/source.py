"""One image source per loader: ``get(i)`` is image ``i`` at Ultralytics' load size, or ``UnreadableImage``.

The stores sit behind it, so engines, tests and benchmarks never see which one answers:

* ``cache="ram"`` / ``cache="disk"``: the whole data set in one packed store (``packed.PackedStore``: shared
  memory, one copy per node, or one file), read as views;
* otherwise (and for any image the store does not hold) recent images in one bounded, decode-once buffer
  (``lru.ImageCache``, sized for Ultralytics' mosaic buffer), filled by decoding.

A fault of the store (no space, too many open files, read-only, I/O errors) is not bad data: it is named once
at WARNING, counted (``store_errors``), and the images come from their source files instead. The source also
owns the set of images found unreadable: an image is unreadable only when its own file cannot be read or
decoded; each is logged once and never read again. A read that fails for another reason (``SourceReadError``:
the machine's fault, retried first) replaces the sample this time, counted in ``read_faults``, and the image
stays in the data set.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from .._closing import Closing
from .decode import SourceReadError, decode_resized, read_bytes
from .lru import ImageCache
from .packed import OK, StoreUnavailable, open_store, path_hashes

__all__ = ["ImageSource", "UnreadableImage"]

LOG = logging.getLogger("loader.images")


class UnreadableImage(OSError):
    """Image ``index`` cannot be served now. ``permanent``: its file is gone, unreadable or not an image (it is
    never read again); otherwise a passing fault of the machine (the sample is replaced this time only)."""

    def __init__(self, index: int, reason: str, permanent: bool = True):
        super().__init__(reason)
        self.index, self.reason, self.permanent = index, reason, permanent


class ImageSource(Closing):
    """Training-size images of ``index`` (a ``DatasetIndex``), ``load_shapes`` (n, 2) their (h, w) for ``imgsz``.

    ``store``: None, ``"ram"`` or ``"disk"``; ``budget_bytes``: the buffer's bound; ``reduced_decode``: the
    DCT-reduced JPEG decode mode (``decode.REDUCE_MODES``; validation uses False); ``workers``: threads
    that build a store; ``key``: what names this data set's store; ``cache_dir``: where ``"disk"`` goes
    (default ``packed.disk_dir()``).
    """

    def __init__(self, index, load_shapes: np.ndarray, *, imgsz: int, budget_bytes: int, store: str | None = None,
                 reduced_decode: bool | str = False, workers: int = 1, key: str = "", cache_dir=None):
        if store not in (None, "ram", "disk"):
            raise ValueError(f"store must be None, 'ram' or 'disk', got {store!r}")
        self.index, self.load_shapes, self.reduced_decode = index, load_shapes, reduced_decode
        self.mode = store
        self.buffer = ImageCache(budget_bytes)
        self._unreadable: dict[int, str] = {}
        self.unreadable_mask = np.zeros(len(index), bool)  # the same set, for questions about whole batches
        self._lock = threading.Lock()
        self.store = None
        self.store_errors = self.read_faults = 0
        self._faults_logged: set = set()
        if store is not None:
            # the decode mode names the store too: one built with another mode holds other pixels
            what = {"data": key, "imgsz": int(imgsz), "decode": str(reduced_decode)}
            try:
                self.store = open_store(store, what, load_shapes, index.stamps, path_hashes(index.im_files),
                                        self._decode_or_none, workers=workers, directory=cache_dir,
                                        on_fallback=self._store_fault)
            except StoreUnavailable as e:
                self._store_fault(f"{e}; decoding from the image files instead")
            if self.store is not None:
                for i in self.store.unreadable.tolist():
                    self._unreadable[i] = "unreadable when the cache was built"
                    self.unreadable_mask[i] = True

    def _store_fault(self, reason: str) -> None:
        with self._lock:
            self.store_errors += 1
        LOG.warning("cache=%r: %s (counted in stats()['store_errors'])", self.mode, reason)

    def _decode_or_none(self, i: int):
        """The store's loader: None for a file that does not decode (flagged unreadable in the store);
        a ``SourceReadError`` leaves the image out of the store (decoded when needed)."""
        try:
            return self.decode(i)
        except SourceReadError:
            raise
        except OSError:
            return None

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
        store = self.store
        if store is not None and store.status[i] == OK:
            return store.get(i)
        try:
            return self.buffer.get(i, lambda: self.decode(i))
        except SourceReadError as e:  # the machine's fault, not the image's: replaced this time, kept
            with self._lock:
                self.read_faults += 1
                first = e.errno not in self._faults_logged
                self._faults_logged.add(e.errno)
            (LOG.warning if first else LOG.debug)(
                "cannot read %s now (%s); the sample is replaced this time, the image stays (further faults are "
                "counted in stats()['read_faults'])", self.index.im_files[i], e.strerror or e)
            raise UnreadableImage(i, str(e), permanent=False) from None
        except OSError as e:  # DecodeError: the file vanished, cannot be read, or does not decode any more
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
        """The buffer's images among ``indices``, as references the caller holds: what one batch keeps while it
        is painted (a store never evicts: its images are not in the buffer)."""
        return self.buffer.take(int(i) for i in indices)

    def __contains__(self, i: int) -> bool:
        """Whether ``get(i)`` is answered without decoding."""
        return (self.store is not None and self.store.status[i] == OK) or i in self.buffer

    def is_unreadable(self, i: int) -> bool:
        return i in self._unreadable

    @property
    def unreadable(self) -> dict[int, str]:
        """Images found unreadable so far: index -> reason (a copy)."""
        with self._lock:
            return dict(self._unreadable)

    @property
    def decodes(self) -> int:
        """Images decoded into the buffer so far (a store's images are not decoded at training time)."""
        return self.buffer.misses

    @property
    def cache_bytes(self) -> int:
        """Bytes of the whole-data-set store, 0 without one."""
        return self.store.nbytes if self.store is not None else 0

    def stats(self) -> dict:
        return self.buffer.stats()

    def store_stats(self) -> dict:
        """What the cache is: asked for, where it is, its size, whether this process built it, its faults."""
        st = self.store
        return {"cache": self.mode, "backing": st.backing if st else None, "path": str(st.path) if st else None,
                "bytes": self.cache_bytes, "built_here": bool(st and st.built_here),
                "build_s": st.build_s if st else 0.0, "decoded": st.decoded if st else 0,
                "copied": st.copied if st else 0, "store_errors": self.store_errors, "read_faults": self.read_faults}

    def close(self) -> None:
        self.buffer.clear()
        if self.store is not None:
            self.store.close()
