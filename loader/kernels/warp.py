"""The mosaic warp straight from the tiles: ``cv2.warpAffine`` of the composed canvas window, without the canvas.

The CPU engine's painters compose the part of the mosaic canvas the output sees (the tiles' crops, 114
elsewhere) and warp it with OpenCV (``opencv.py``): the copy and the fills cost ~0.6 ms of a painter's ~9.3 ms
per uncached 896 px image. Ultralytics' default augmentation (``degrees=0``, ``shear=0``, ``perspective=0``)
makes matrices with no rotation or shear (scale, translation, the folded-in flips), for which the warp is
separable; ``warp.c`` (built by pip where a C compiler is present) computes OpenCV's bytes for them reading the
tile rows in place, with AVX-512 VBMI. Matrices with rotation or shear, and CPUs without AVX-512 VBMI, keep the
canvas and OpenCV (the latter warned once: slower; ``kernel()`` says which route runs and why). The kernel is
checked bitwise against the installed OpenCV on test mosaics before it is used. ``YOLO_LOADER_WARP=opencv``
chooses the canvas and OpenCV (an A/B, or a way out should the kernel misbehave).

OpenCV 5.1's ``warpAffine`` (INTER_LINEAR, 8-bit) maps each output pixel through the inverted matrix in double,
rounds the fractional parts to float and interpolates in float (``warp.c``'s header has the steps).
"""

from __future__ import annotations

import ctypes
import threading

import cv2
import numpy as np

from . import native

__all__ = ["native_kernel", "run_native", "kernel", "separable", "warp_pastes", "routes"]

FILL = 114
MAX_PASTES = 16  # warp.c's MAX_SEGS
_routes = {"native": 0, "canvas": 0}
_routes_lock = threading.Lock()


def native_kernel():
    """The compiled kernel (``warp.c``) through ctypes, which releases the GIL for the call: (``warp_scaled``,
    whether this CPU runs its AVX-512 code). ImportError where pip did not build it."""
    i, p = ctypes.c_int, ctypes.c_void_p
    return native.function("warp", "warp_scaled", i, [p, ctypes.c_long, i, i, p, i, i, i, i, p, p, p, p, i, i,
                                                      p, p, i, i, i, i], "warp_vector")


def separable(M: np.ndarray) -> bool:
    """Whether the kernel takes the forward matrix ``M`` (2x3 or 3x3): no rotation, shear or perspective."""
    return M[0, 1] == 0 and M[1, 0] == 0 and (len(M) == 2 or (M[2, 0] == 0 and M[2, 1] == 0 and M[2, 2] == 1))


def run_native(fn, images, pastes, window_hw: tuple[int, int], M: np.ndarray, out: np.ndarray, vec: bool,
               fma: bool, box: tuple[int, int, int, int] | None = None, outer: int = FILL,
               finish: tuple | None = None) -> None:
    """Warp the window (``window_hw``; ``pastes``: (k, sy, sx, h, w, dy, dx), tile ``images[k]``'s pixels at
    (sy, sx) land on window (dy, dx); 114 elsewhere) by the forward matrix ``M`` (window pixel -> output pixel,
    ``separable``) into ``out`` (H, W, 3) uint8, rows contiguous, as ``cv2.warpAffine`` with INTER_LINEAR and a
    114 border would; ``box`` (Y0, Y1, X0, X1; default: the whole output): outside it every pixel is 114 in that
    warp (the caller knows, ``opencv._tiles_boxes``), and the kernel writes those without computing them: 114
    beside the box, ``outer`` in the rows above and below it.

    ``finish`` (``hsv.row_finisher``): the colour step runs on the box's rows as the kernel makes them, 16 rows at
    a time in a buffer that stays in the cache, and only its result is written to ``out`` (the warp's pixels
    are never written there and read back: ~0.2 ms less per 896 px sample); ``outer`` is then written beside
    the box too (the colour 114 takes in that step)."""
    if not _rows_contiguous(out):
        raise ValueError(f"warp kernel writes uint8 (H, W, 3) arrays with contiguous rows, got {out.strides}")
    for p in pastes:
        if not _rows_contiguous(images[p[0]]):
            raise ValueError(f"warp kernel reads uint8 (h, w, 3) tiles with contiguous rows, got "
                             f"{images[p[0]].strides}")
    _call(fn, images, pastes, window_hw, M, out, vec, fma, box, outer, finish)


def _rows_contiguous(a: np.ndarray) -> bool:
    return a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and a.strides[1] == 3 and a.strides[2] == 1


_NO_FINISH = (None, None, 0, 0, 0, 0)


def _call(fn, images, pastes, window_hw, M, out, vec, fma, box, outer, finish=None) -> None:
    """``run_native`` on arguments already checked (the painters check them once, in ``warp_pastes``)."""
    H, W = out.shape[:2]
    box = np.array((0, H, 0, W) if box is None else box, np.int32)
    n = len(pastes)
    ptr = np.empty(n, np.uintp)
    step = np.empty(n, np.int64)
    rect = np.empty((n, 4), np.int32)
    for t, (k, sy, sx, h, w, dy, dx) in enumerate(pastes):
        im = images[k]
        ptr[t] = im.ctypes.data + sy * im.strides[0] + sx * 3
        step[t] = im.strides[0]
        rect[t] = dy, dx, h, w
    m = np.ascontiguousarray(M[:2], np.float64)
    rc = fn(out.ctypes.data, out.strides[0], H, W, m.ctypes.data, int(fma), int(window_hw[0]), int(window_hw[1]), n,
            ptr.ctypes.data, step.ctypes.data, rect.ctypes.data, box.ctypes.data, int(outer), int(vec),
            *(finish or _NO_FINISH))
    if rc == -2:
        raise ValueError("warp kernel: the matrix has rotation or shear")
    if rc == -3:
        raise ValueError(f"warp kernel: {n} pastes, more than it takes ({MAX_PASTES})")
    if rc != 0:
        raise MemoryError("warp kernel: out of memory")


def _cases():
    """Test mosaics: random tiles pasted into a window with grey gaps, warped by scales up and down, flips,
    fractional translations; outputs of widths that do and do not fill a vector."""
    rng = np.random.default_rng(7)
    for s, flip, (H, W) in ((1.37, 1, (96, 96)), (0.61, -1, (64, 80)), (1.0, 1, (50, 37)), (0.93, -1, (128, 128)),
                            (1.5, 1, (33, 96))):
        tiles = [rng.integers(0, 256, (rng.integers(20, 90), rng.integers(20, 90), 3), np.uint8) for _ in range(4)]
        wh, ww = 120, 130
        yc, xc = 57, 61
        pastes = [(0, 3, 2, 50, 55, 7, 6), (1, 0, 5, 40, 60, 17, xc), (2, 1, 0, 60, 50, yc, 11), (3, 0, 0, 63, 69, yc, xc)]
        pastes = [(k, sy, sx, min(h, tiles[k].shape[0] - sy, wh - dy), min(w, tiles[k].shape[1] - sx, ww - dx), dy, dx)
                  for k, sy, sx, h, w, dy, dx in pastes]
        canvas = np.full((wh, ww, 3), FILL, np.uint8)
        for k, sy, sx, h, w, dy, dx in pastes:
            canvas[dy:dy + h, dx:dx + w] = tiles[k][sy:sy + h, sx:sx + w]
        tx = -7.3 + (W if flip < 0 else 0)
        M = np.array([[s * flip, 0, tx], [0, s, -5.71]])
        yield tiles, pastes, (wh, ww), M, canvas, (H, W)


def reference(canvas: np.ndarray, M: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """OpenCV's bytes: the painters' canvas route."""
    return cv2.warpAffine(canvas, np.asarray(M, np.float64)[:2], (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(FILL, FILL, FILL))


def _self_check(fn):
    """The arithmetic (the row coordinate in one rounding or two) for which the kernel's AVX-512 code gives
    ``cv2.warpAffine``'s bytes on every test mosaic; None where neither does."""
    for fma in (False, True):
        ok = True
        for tiles, pastes, whw, M, canvas, hw in _cases():
            out = np.empty((*hw, 3), np.uint8)
            run_native(fn, tiles, pastes, whw, M, out, True, fma)
            if not np.array_equal(out, reference(canvas, M, hw)):
                ok = False
                break
        if ok:
            return {"fma": fma}
    return None


def _decide() -> dict:
    fn, checked, why = native.choose(lambda: native.built(native_kernel, "warp", "the kernel is faster than OpenCV"),
                                     "YOLO_LOADER_WARP", _self_check, "warp",
                                     "the mosaic warp composes its canvas and runs cv2.warpAffine (about 0.6 ms "
                                     "more per 896 px sample)")
    return {"fn": fn, "why": why, **(checked or {"fma": False})}


_setup = native.Once(_decide)  # painters ask per sample: no lock once it is set


def kernel() -> str:
    """Which route the mosaic warp takes in this process: "native", or "opencv: <why>"."""
    s = _setup()
    return "native" if s["fn"] is not None else f"opencv: {s['why']}"


def routes() -> dict[str, int]:
    """How many mosaic warps took each route in this process: "native" (the kernel) and "canvas" (a matrix with
    rotation or shear, more than ``MAX_PASTES`` tiles, a tile or output without contiguous rows, or no kernel:
    composed and cv2.warpAffine)."""
    with _routes_lock:
        return dict(_routes)


def warp_pastes(images, pastes, window_hw: tuple[int, int], M: np.ndarray, out: np.ndarray,
                box: tuple[int, int, int, int] | None = None, outer: int = FILL, finish: tuple | None = None) -> bool:
    """Warp the pasted window into ``out`` with the kernel where it runs and takes ``M`` (``outer`` outside
    ``box``, ``finish`` the colour step on the box: see ``run_native``); False where the caller composes the
    canvas and warps it with OpenCV instead (counted in ``routes()``), and nothing is written."""
    s = _setup()
    ok = s["fn"] is not None and separable(M) and len(pastes) <= MAX_PASTES and _rows_contiguous(out) and \
        all(_rows_contiguous(images[p[0]]) for p in pastes)
    with _routes_lock:
        _routes["native" if ok else "canvas"] += 1
    if ok:
        _call(s["fn"], images, pastes, window_hw, M, out, True, s["fma"], box, outer, finish)
    return ok
