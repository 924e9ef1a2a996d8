"""glibc's allocator, set for a loader's buffers: decoded frames (6 MB at 1920x1080), resized tiles and windows.

By default glibc serves every allocation over its dynamic mmap threshold (128 KiB up to 32 MiB) with a fresh
mapping and unmaps it on free, so each decode faults its frame in page by page again (270-440 minor faults
per image here) while the other painter thread waits on the same address-space lock. Raising the mmap and
trim thresholds keeps freed frames in the heap for the next decode. Measured on 2 cores, 896 px, batch 32,
1920x1080 JPEGs, 2 painter threads, 2 interleaved rounds: 160.6 -> 182.9 img/s, 12.0 -> 10.7 ms CPU per image,
faults 9 per image, for ~0.2 GiB more PSS.

That left one path to fresh pages: each painter thread allocates from its own glibc arena, whose heaps (64 MiB
each) fill with the buffer's long-lived tiles; a 6 MB frame that no longer fits opens a new heap, and when the
frame is freed the emptied heap is unmapped (glibc does that whatever the trim threshold: only ``M_TOP_PAD``
keeps it). strace counted ~2.4 new 64 MiB heaps per decoded image, each faulting the next frame in afresh
(as huge pages: NumPy asks for them on arrays over 4 MB). A 64 MiB top pad keeps the emptied heap: 9 new heaps
in the same run, and 188 -> 212 img/s, 10.5 -> 9.2 ms CPU per image (896 px, batch 32, 3 interleaved pairs).

The bench's ceilings and stock's speed rows run with the same setting (``GLIBC_TUNABLES``: stock decodes
~10 % faster with it); its forced RAM rows keep glibc's defaults, as users' runs do
(``integration/bench/main.py``). ``YOLO_LOADER_MALLOC=0`` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "TOP_PAD", "tune_allocator", "glibc_tunables"]

LOG = logging.getLogger("loader")
MMAP_THRESHOLD = 256 << 20  # allocations below this come from the heap (default: dynamic, 128 KiB - 32 MiB)
TRIM_THRESHOLD = 512 << 20  # free memory at the heap top kept, not returned (default 128 KiB, dynamic)
TOP_PAD = 64 << 20  # a thread's heap kept when it empties (default 128 KiB: glibc unmaps it)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
_lock = threading.Lock()
_state: dict = {}


def _enabled() -> bool:
    return os.environ.get("YOLO_LOADER_MALLOC", "1") != "0" and sys.platform.startswith("linux")


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds and its top pad in this process (once); False where it is not glibc
    or turned off. Every later allocation of every thread follows them."""
    with _lock:
        if "done" in _state:
            return _state["done"]
        ok = False
        if _enabled():
            try:
                libc = ctypes.CDLL("libc.so.6")
                ok = all(libc.mallopt(p, v) for p, v in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                         (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
            except (OSError, AttributeError):
                ok = False
            LOG.debug("glibc malloc: mmap threshold %d MiB, trim threshold %d MiB, top pad %d MiB%s",
                      MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20, TOP_PAD >> 20,
                      "" if ok else " not applied (no glibc mallopt)")
        _state["done"] = ok
        return ok


def glibc_tunables() -> str | None:
    """The same setting as a ``GLIBC_TUNABLES`` value for other processes (the bench's ceilings and stock's speed
    rows)."""
    if not _enabled():
        return None
    return (f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.trim_threshold={TRIM_THRESHOLD}:"
            f"glibc.malloc.top_pad={TOP_PAD}")
