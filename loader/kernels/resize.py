"""Ultralytics' load-time resize, bitwise: ``cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)``.

Every image served without a pixel cache is decoded and resized to its load size; at 896 px a 1920x1080 frame's
resize took ~1.15 ms of a painter thread next to ~6 ms of decode. ``resize.c`` (built by pip where a C compiler
is present) computes OpenCV's fixed-point bytes with AVX-512 VBMI: ~0.85 ms in the loader, ~0.65 vs ~0.87 ms
on a warm frame. It is used only where it is faster and checked bitwise against the installed OpenCV on test
images first; otherwise ``cv2.resize`` runs (warned once: slower; ``kernel()`` says which route and why).
``YOLO_LOADER_RESIZE=opencv`` chooses OpenCV (an A/B, or a way out should the kernel misbehave).

Exactly 2x up or down always goes to OpenCV: OpenCV has special paths there (INTER_AREA for 2x down, a 2x-up
kernel in newer releases), which this code does not claim to reproduce. So does a horizontal downscale of more
than ``MAX_DOWNSCALE`` (a 6000-pixel-wide image to 896), where OpenCV is as fast.
"""

from __future__ import annotations

import ctypes

import cv2
import numpy as np

from . import native

__all__ = ["resize_linear", "native_kernel", "run_native", "kernel", "MAX_DOWNSCALE"]

# Beyond this horizontal downscale OpenCV is as fast or faster (one thread, warm, to 896 px wide: the kernel
# 1.44x OpenCV's speed from 640x480 up, 1.42x from 1920x1080, 1.24x at 4x, 1.16x at 6x, slower at 6.5x; past
# ~6.8x a 16-output chunk's bytes leave its 128-byte window and it works per element): OpenCV does those.
MAX_DOWNSCALE = 6.0


def native_kernel():
    """The compiled kernel (``resize.c``) through ctypes, which releases the GIL for the call: (``resize_linear``,
    whether this CPU runs its AVX-512 code). ImportError where pip did not build it."""
    i, p, n = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    return native.function("resize", "resize_linear", i, [p, n, i, i, p, n, i, i, i, i], "resize_vector")


def run_native(fn, im: np.ndarray, hw: tuple[int, int], vec: bool) -> np.ndarray:
    """``im`` (h, w, cn) uint8, rows contiguous, resized to ``hw`` by the built kernel (``vec``: its AVX-512 code,
    else its per-element reference code)."""
    h, w = int(hw[0]), int(hw[1])
    cn = im.shape[2]
    if im.dtype != np.uint8 or im.strides[1] != cn or im.strides[2] != 1:
        raise ValueError(f"resize kernel takes uint8 images with contiguous rows, got {im.dtype} {im.strides}")
    out = np.empty((h, w, cn), np.uint8)
    if fn(im.ctypes.data, im.strides[0], im.shape[0], im.shape[1], out.ctypes.data, out.strides[0], h, w, cn,
          int(vec)) != 0:
        raise MemoryError("resize kernel: out of memory")
    return out


def _self_check(fn) -> bool:
    """Whether the kernel's AVX-512 code gives ``cv2.resize``'s bytes on random images: down and up, odd widths
    (a row that does not fill a vector), 1, 3 and 4 channels, and a source with padded rows."""
    rng = np.random.default_rng(3)
    for sh, sw, dh, dw in ((1080, 1920, 504, 896), (481, 641, 673, 895), (333, 517, 101, 157), (7, 9, 3, 4),
                           (61, 50, 203, 11), (2000, 700, 127, 96)):
        for cn in (3, 1, 4):
            src = rng.integers(0, 256, (sh, sw + 5, cn), np.uint8)[:, 2:sw + 2]
            ref = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(dh, dw, cn)
            if not np.array_equal(run_native(fn, src, (dh, dw), True), ref):
                return False
    return True


def _decide() -> dict:
    fn, _, why = native.choose(lambda: native.built(native_kernel, "resize", "the kernel is faster than OpenCV"),
                               "YOLO_LOADER_RESIZE", _self_check, "resize",
                               "the load-time resize runs through cv2.resize (about 1.3x slower than the kernel)")
    return {"fn": fn, "why": why}


_setup = native.Once(_decide)  # every decode asks: no lock once it is set


def kernel() -> str:
    """Which route the load-time resize takes in this process: "native", or "opencv: <why>"."""
    s = _setup()
    return "native" if s["fn"] is not None else f"opencv: {s['why']}"


def resize_linear(im: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``cv2.resize(im, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)``'s bytes, in a new (h, w, 3) array."""
    h, w = int(hw[0]), int(hw[1])
    fn = _setup()["fn"]
    sh, sw = im.shape[:2]
    if fn is None or im.ndim != 3 or im.dtype != np.uint8 or im.strides[1] != im.shape[2] or im.strides[2] != 1 \
            or (sh == 2 * h and sw == 2 * w) or (h == 2 * sh and w == 2 * sw) or sw > MAX_DOWNSCALE * w:
        return cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
    return run_native(fn, im, (h, w), True)
