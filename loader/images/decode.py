"""Decode an image at the size Ultralytics trains on (OpenCV).

``load_size`` is Ultralytics' ``load_image`` rule (long side to imgsz, ``ceil``, capped).
``decode_resized`` reaches that size as Ultralytics does (full decode, INTER_LINEAR resize: OpenCV's bytes,
through the native kernels where they run, ``loader/kernels/jpeg.py`` and ``resize.py``), or through a
JPEG decoded DCT-reduced (libjpeg's 1/2, 1/4, 1/8 IDCT scaling) and INTER_LINEAR the rest of the way:

* ``reduce="equivalent"`` (the loader's default): only where that gives the same images, i.e. when the target
  is exactly half the source (sharpness ratio 1.007, 0.4-0.6 grey levels apart: ``benchmarks/
  decode_sharpness.py``);
* ``reduce=True``: whenever the reduced image is still at least the target. Faster (1920x1080 -> 896: 7.1 ms
  instead of 13.6 ms per image) but not the same training images: a proper low-pass where Ultralytics'
  INTER_LINEAR aliases, 0.45-0.65x the sharpness (Laplacian variance) at every other scale;
* ``reduce=False``: never.
"""

from __future__ import annotations

import errno
import time

import cv2
import numpy as np

from ..kernels.jpeg import decode_jpeg
from ..kernels.resize import resize_linear
from ..plan import load_size

__all__ = ["DecodeError", "SourceReadError", "load_size", "reduction_for", "decode_resized", "read_bytes",
           "REDUCE_MODES"]

REDUCE_MODES = (False, True, "equivalent")

class DecodeError(OSError):
    """An indexed image could not be read or decoded at training time: the file's own fault (gone, no permission,
    not an image any more)."""


class SourceReadError(OSError):
    """A read failed for a reason that is not the file's (too many open files, no memory, an I/O error on a
    network share) and kept failing when retried: the image is not bad data."""


# errors that say something about the file itself; any other errno is the machine's and may pass
_FILE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ELOOP,
                errno.ENAMETOOLONG, errno.ENXIO}
_RETRY_S = (0.01, 0.05)


def reduction_for(h0: int, w0: int, h: int, w: int, mode: bool | str = True) -> int:
    """The DCT reduction factor for a (h0, w0) JPEG loaded at (h, w): the largest whose output is still at least
    (h, w) (``mode=True``), 2 only when that is exactly (h, w) (``"equivalent"``), 1 (``False``)."""
    if mode == "equivalent":
        return 2 if (-(-h0 // 2), -(-w0 // 2)) == (h, w) else 1
    if not mode:
        return 1
    for f in (8, 4, 2):
        if -(-h0 // f) >= h and -(-w0 // f) >= w:
            return f
    return 1


def decode_resized(data: np.ndarray | bytes, hw0: tuple[int, int], hw: tuple[int, int], jpeg: bool,
                   reduce: bool | str = False, path: str = "<bytes>") -> np.ndarray:
    """BGR uint8 (h, w, 3) image from encoded bytes; ``hw0`` is the upright size from the index; ``reduce``: the
    DCT-reduced decode mode (see the module)."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise DecodeError(f"{path}: file is empty")
    f = reduction_for(*hw0, *hw, reduce) if jpeg else 1
    eh, ew = -(-hw0[0] // f), -(-hw0[1] // f)
    im = decode_jpeg(buf, f, (eh, ew)) if jpeg else cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if im is None:
        raise DecodeError(f"{path}: image does not decode")
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    elif im.shape[2] == 4:
        im = cv2.cvtColor(im, cv2.COLOR_BGRA2BGR)
    if im.dtype != np.uint8:
        im = (im >> 8).astype(np.uint8)
    if abs(im.shape[0] - eh) > 1 or abs(im.shape[1] - ew) > 1:
        raise DecodeError(f"{path}: decoded size {im.shape[:2]} differs from the indexed size {hw0} "
                          f"(file changed since indexing?)")
    if im.shape[:2] != tuple(hw):
        im = resize_linear(im, hw)
    return im


def read_bytes(path: str) -> np.ndarray:
    """The file's bytes as a read-only uint8 array. A plain file read: it releases the GIL while it waits
    (``np.fromfile`` holds it, measured with ``py-spy record --gil`` in the painter threads).

    ``DecodeError`` when the file is the problem (``_FILE_ERRNOS``); any other failure is retried twice
    (10 and 50 ms later), then raised as ``SourceReadError``."""
    for wait in (*_RETRY_S, None):
        try:
            with open(path, "rb") as f:
                return np.frombuffer(f.read(), np.uint8)
        except OSError as e:
            if e.errno in _FILE_ERRNOS:
                raise DecodeError(f"{path}: cannot read ({e})") from None
            if wait is None:
                raise SourceReadError(e.errno, f"{path}: cannot read ({e.strerror or e}), retried "
                                      f"{len(_RETRY_S)} times") from None
            time.sleep(wait)
    raise AssertionError("unreachable")
