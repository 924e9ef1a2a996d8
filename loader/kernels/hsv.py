"""Ultralytics' ``RandomHSV`` colour step, bitwise, on the part of an output image that needs it.

Ultralytics converts the whole image with ``cv2.cvtColor(BGR2HSV)``, ``cv2.LUT`` and ``cv2.cvtColor(HSV2BGR)``.
OpenCV's 8-bit HSV2BGR truncates in its vector code and rounds in the scalar tail of each row, so a pixel's bytes
depend on whether it sat in the vector part of its row in that full-frame call (up to 1 level on most colour
pixels of a tail). Converting only the box of pixels that can see a tile, as the painters do, moves the tails:
the box's own row tails would round where Ultralytics truncated. Both routes here keep Ultralytics' bytes:

* ``hsv.c`` (built by pip where a C compiler is present), one pass, ~2x faster than OpenCV's three on a CPU with
  AVX-512 VBMI: told which columns OpenCV's vector code covered in the full frame;
* otherwise OpenCV's three passes, over the box widened to whole vector blocks of the frame, and its tail on its
  own (warned once: slower; ``kernel()`` says which route runs and why). ``YOLO_LOADER_HSV=opencv`` chooses
  this route (the bench's A/B, or a way out should the kernel misbehave).

Which columns are "vector" depends on the OpenCV build and CPU (the block is 64 pixels with AVX-512, 32 with
AVX2): measured once from OpenCV itself (``vector_block``), and the native kernel is checked bitwise against
OpenCV on test images before it is used. The horizontal flip comes after HSV in Ultralytics (``RandomFlip``),
and our warps fold it in before: a flipped frame's vector columns are mirrored.
"""

from __future__ import annotations

import ctypes

import cv2
import numpy as np

from . import native

__all__ = ["hsv_luts_batch", "apply_hsv", "opencv_three_passes", "land", "native_kernel", "kernel", "vector_block",
           "vector_columns", "planar_luts", "row_finisher"]

_CANDIDATE_BLOCKS = (64, 32, 16, 8, 4, 0)  # OpenCV's HSV2BGR: 4 float32 vectors per step (0: no vector code)


def hsv_luts_batch(r: np.ndarray) -> np.ndarray:
    """Ultralytics' ``RandomHSV`` tables for gains ``r`` (B, 3) (already times the hyp gains): (B, 256, 3) uint8,
    the hue, saturation and value table of each sample."""
    r = np.asarray(r, np.float64).reshape(-1, 3)
    x = np.arange(0, 256, dtype=np.float64)
    lut_hue = ((x + r[:, :1] * 180) % 180).astype(np.uint8)
    lut_sat = np.clip(x * (r[:, 1:2] + 1), 0, 255).astype(np.uint8)
    lut_val = np.clip(x * (r[:, 2:3] + 1), 0, 255).astype(np.uint8)
    lut_sat[:, 0] = 0
    return np.stack([lut_hue, lut_sat, lut_val], -1)


def land(res: np.ndarray, dst: np.ndarray) -> None:
    """Make sure an OpenCV result given ``dst=`` is in ``dst``: OpenCV allocates a new array instead of writing
    a view it cannot use (a non-contiguous one, for some calls); copy it there then."""
    if res is not dst and res.__array_interface__["data"][0] != dst.__array_interface__["data"][0]:
        dst[...] = res


def opencv_three_passes(img: np.ndarray, lut: np.ndarray, to_rgb: bool) -> None:
    """Ultralytics' three OpenCV passes on ``img`` (a view: each of its rows is one OpenCV row), in place."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    cv2.LUT(hsv, lut.reshape(1, 256, 3), dst=hsv)
    land(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB if to_rgb else cv2.COLOR_HSV2BGR, dst=img), img)


def _measure_block() -> int | None:
    """OpenCV's HSV2BGR vector block in pixels, read off OpenCV: a row of random HSV pixels converted whole, and
    pixel by pixel (all scalar tail); a row of 255 of them is vector up to the largest multiple of the block."""
    rng = np.random.default_rng(7)
    row = np.empty((1, 256, 3), np.uint8)
    row[..., 0] = rng.integers(0, 180, 256)
    row[..., 1:] = rng.integers(1, 256, (256, 2))
    whole = cv2.cvtColor(row, cv2.COLOR_HSV2BGR)  # 256: a multiple of every block, so vector throughout
    scalar = np.concatenate([cv2.cvtColor(np.ascontiguousarray(row[:, i:i + 1]), cv2.COLOR_HSV2BGR)
                             for i in range(256)], 1)
    if np.array_equal(whole, scalar):  # ~3/4 of random pixels differ between the two codes: no vector code here
        return 0

    def predicted(w: int, b: int) -> np.ndarray:
        return np.concatenate([whole[:, :w // b * b], scalar[:, w // b * b:w]], 1)

    got = {w: cv2.cvtColor(np.ascontiguousarray(row[:, :w]), cv2.COLOR_HSV2BGR) for w in (255, 200, 97)}
    fits = [b for b in _CANDIDATE_BLOCKS if b and np.array_equal(got[255], predicted(255, b))]  # 255: unambiguous
    if len(fits) != 1 or not all(np.array_equal(got[w], predicted(w, fits[0])) for w in (200, 97)):
        return None
    return fits[0]


def native_kernel():
    """The compiled kernel (``hsv.c``) through ctypes, which releases the GIL for the call: (``hsv_apply``, whether
    this CPU runs its AVX-512 blocks). ImportError where pip did not build it."""
    i, p, n = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    return native.function("hsv", "hsv_apply", None, [p, n, p, n, i, i, p, i, i, i, i], "hsv_vector")


def _self_check(fn, block: int) -> int | None:
    """The FMA setting under which ``fn`` equals OpenCV's three passes on random images (rows with and without a
    scalar tail, both channel orders, several gains), or None."""
    rng = np.random.default_rng(11)
    cases = []
    for w in (256, 200, 97, 5):
        img = rng.integers(0, 256, (6, w, 3), np.uint8)
        img[0, : w // 2] = 114  # grey, and pure colours, where the sector arithmetic has its edges
        img[1, : min(w, 8)] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                               [255, 255, 255], [0, 0, 0]][: min(w, 8)]
        for gains in ((0.0, 0.0, 0.0), tuple(rng.uniform(-1, 1, 3) * [0.5, 0.9, 0.9])):
            lut = hsv_luts_batch(np.array(gains))[0]
            for to_rgb in (True, False):
                ref = img.copy()
                opencv_three_passes(ref, lut, to_rgb)
                cases.append((img, lut, to_rgb, w // block * block if block else 0, ref))
    for fma in (1, 0):
        ok = True
        for img, lut, to_rgb, hi, ref in cases:
            planar = planar_luts(lut)[0]
            for x0 in (0, 3):  # the whole rows, and rows from column 3 (vector blocks cut at both ends)
                src = img[:, x0:]
                out = np.empty_like(src)
                fn(src.ctypes.data, src.strides[0], out.ctypes.data, out.strides[0], src.shape[0], src.shape[1],
                   planar.ctypes.data, -x0, hi - x0, int(to_rgb), fma)
                ok = ok and np.array_equal(out, ref[:, x0:])
            if not ok:
                break
        if ok:
            return fma
    return None


def _decide() -> dict:
    block = _measure_block()

    def built():
        if block is None:
            return None, "OpenCV's HSV2BGR vector block could not be measured"
        return native.built(native_kernel, "HSV", "the one-pass kernel is faster than OpenCV's three passes")

    fn, fma, why = native.choose(built, "YOLO_LOADER_HSV", lambda fn: _self_check(fn, block), "HSV",
                                 "HSV jitter runs through OpenCV's three passes (about 2x slower than the one-pass "
                                 "kernel)")
    return {"fn": fn, "fma": fma, "block": block, "why": why,
            "address": None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value}


_setup = native.Once(_decide)  # every sample asks: no lock once it is set


def kernel() -> str:
    """Which route the HSV step takes in this process: "native", or "opencv: <why>"."""
    s = _setup()
    return "native" if s["fn"] is not None else f"opencv: {s['why']}"


def vector_block() -> int | None:
    """OpenCV's HSV2BGR vector block in pixels on this machine (64 with AVX-512), None if it could not be read."""
    return _setup()["block"]


def vector_columns(frame_w: int, flip_lr: bool, block: int | None = None) -> tuple[int, int]:
    """[lo, hi): the output columns whose bytes came from OpenCV's vector code in Ultralytics' full-frame HSV2BGR
    (before its left-right flip; mirrored when the frame is flipped). The rest of each row is its scalar tail.
    ``block``: ``vector_block()`` already read."""
    b = (vector_block() if block is None else block) or 0
    v = frame_w // b * b if b else 0
    return (frame_w - v, frame_w) if flip_lr else (0, v)


def planar_luts(luts: np.ndarray) -> np.ndarray:
    """``hsv_luts_batch``'s (B, 256, 3) tables as the kernel reads them: (B, 3, 256), contiguous."""
    return np.ascontiguousarray(np.asarray(luts, np.uint8).reshape(-1, 256, 3).transpose(0, 2, 1))


def row_finisher(planar: np.ndarray, to_rgb: bool, frame_w: int, flip_lr: bool = False) -> tuple | None:
    """The native kernel as a C function a C caller runs on rows it makes (``warp.run_native``'s ``finish``:
    the warp's rows are coloured in the cache, not written to the frame and read back): (its address, the
    table ``planar`` (3, 256, from ``planar_luts``; the caller keeps it alive), the frame's vector columns, the
    channel order, the FMA setting). None where HSV takes OpenCV's route: the caller runs ``apply_hsv``."""
    s = _setup()
    if s["fn"] is None:
        return None
    lo, hi = vector_columns(frame_w, flip_lr, s["block"] or 0)
    return s["address"], planar.ctypes.data, lo, hi, int(to_rgb), s["fma"]


def apply_hsv(frame: np.ndarray, r: np.ndarray | None, to_rgb: bool, lut: np.ndarray | None = None,
              box: tuple[int, int, int, int] | None = None, flip_lr: bool = False) -> None:
    """Ultralytics' HSV jitter with gains ``r`` on ``frame[Y0:Y1, X0:X1]`` (``box``; the whole frame by default),
    in place, ending in RGB (``to_rgb``) or BGR order: the bytes Ultralytics' full-frame conversion gives those
    pixels. ``lut``: ``hsv_luts_batch(r)`` made already. Outside the box the frame must hold grey (114 after the
    warp) where the OpenCV route widens the box (grey converts to grey on every path)."""
    H, W = frame.shape[:2]
    Y0, Y1, X0, X1 = (0, H, 0, W) if box is None else box
    if Y1 <= Y0 or X1 <= X0:
        return
    if r is None:
        if to_rgb:
            roi = frame[Y0:Y1, X0:X1]
            land(cv2.cvtColor(roi, cv2.COLOR_BGR2RGB, dst=roi), roi)
        return
    lut = (hsv_luts_batch(r) if lut is None else lut).reshape(256, 3)
    s = _setup()
    lo, hi = vector_columns(W, flip_lr, s["block"] or 0)
    if s["fn"] is not None and frame.strides[1] == 3 and frame.strides[2] == 1:
        roi = frame[Y0:Y1, X0:X1]
        planar = planar_luts(lut)[0]
        s["fn"](roi.ctypes.data, roi.strides[0], roi.ctypes.data, roi.strides[0], Y1 - Y0, X1 - X0,
                planar.ctypes.data, lo - X0, hi - X0, int(to_rgb), s["fma"])
        return
    if s["block"] is None or (X0 == 0 and X1 == W):
        opencv_three_passes(frame[Y0:Y1, X0:X1], lut, to_rgb)  # the whole width is Ultralytics' own call
        return
    # OpenCV on the box widened to whole vector blocks of the frame's grid, then the scalar columns on their own
    b = s["block"]
    a, e = max(X0, lo), min(X1, hi)
    if e > a:
        a = lo + (a - lo) // b * b
        e = lo + -(-(e - lo) // b) * b
        opencv_three_passes(frame[Y0:Y1, a:e], lut, to_rgb)
    for t0, t1 in ((X0, min(X1, lo)), (max(X0, hi), X1)):  # each narrower than a block: all scalar in OpenCV
        if t1 > t0:
            opencv_three_passes(frame[Y0:Y1, t0:t1], lut, to_rgb)
