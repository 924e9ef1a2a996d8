"""JPEG decode with cv2.imdecode's bytes, ~20 % faster: libjpeg-turbo writing straight into the output array.

``cv2.imdecode`` was ~6 ms of a painter thread's ~10 ms per uncached 1920x1080 image: OpenCV reads one scanline per
libjpeg call into a row buffer and copies every row into its Mat. ``jpeg.c`` (built by pip where the libjpeg-turbo
headers are) hands libjpeg the output rows themselves: 4.5 instead of 5.5 ms per frame, one thread, warm. The
pixels are the same, checked against the installed OpenCV on test images at first use (``_self_check``); where
the kernel is not built, does not match, or ``YOLO_LOADER_JPEG=opencv`` opts out, every JPEG goes to
``cv2.imdecode`` (warned once: slower; ``kernel()`` says which route and why).

Per image, the kernel declines what it does not do as OpenCV does, and ``cv2.imdecode`` decodes it: an EXIF
orientation other than 1 (OpenCV rotates), CMYK/YCCK, a stream libjpeg warns about (corrupt data: OpenCV's
handling is OpenCV's), a libjpeg error, a size other than the index's. Declines are counted by reason
(``declined()``, in the CPU engine's stats) and the first of each reason is logged.
"""

from __future__ import annotations

import ctypes
import logging
import threading

import cv2
import numpy as np

from . import native

__all__ = ["decode_jpeg", "native_kernel", "run_native", "frame", "kernel", "library", "declined", "REASONS"]

LOG = logging.getLogger("loader")

# jpeg.c's return codes (0: decoded; -1: out of memory)
REASONS = {1: "colour space (CMYK/YCCK)", 2: "EXIF orientation", 3: "libjpeg warning (corrupt data)",
           4: "libjpeg error", 5: "size differs from the index"}
_READ = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
         8: cv2.IMREAD_REDUCED_COLOR_8}

_lock = threading.Lock()
_declined: dict[str, int] = {}


def native_kernel():
    """The compiled decoder (``jpeg.c``) through ctypes, which releases the GIL for the call: (``jpeg_decode_bgr``,
    True: libjpeg-turbo brings its own SIMD). ImportError where pip did not build it."""
    i, p, n = ctypes.c_int, ctypes.c_void_p, ctypes.c_long
    return native.function("jpeg", "jpeg_decode_bgr", i, [p, n, i, p, n, i, i])


def frame(h: int, w: int) -> np.ndarray:
    """An empty (h, w, 3) uint8 image whose data starts 8 bytes past a 32-byte boundary. libjpeg-turbo's SIMD
    colour conversion writes 32-byte-aligned output rows with non-temporal stores, which bypass the caches: the
    frame then goes to memory and the resize that reads it next waits for it (1920x1080, decode + resize, one
    thread: 5.86 ms aligned vs 5.62 ms here, the decode alone 5.00 vs 4.95 ms; a 1920-pixel row is 5,760 bytes,
    so every row has the first row's alignment)."""
    n = h * w * 3
    raw = np.empty(n + 32, np.uint8)
    off = (8 - raw.ctypes.data) % 32
    return raw[off:off + n].reshape(h, w, 3)


def run_native(fn, buf: np.ndarray, scale: int, hw: tuple[int, int]) -> tuple[np.ndarray | None, int]:
    """(the (h, w, 3) BGR image, 0), or (None, the kernel's reason code) where it declined."""
    h, w = int(hw[0]), int(hw[1])
    buf = np.ascontiguousarray(buf, np.uint8)
    out = frame(h, w)
    rc = fn(buf.ctypes.data, buf.size, int(scale), out.ctypes.data, out.strides[0], h, w)
    if rc < 0:
        raise MemoryError("jpeg kernel: out of memory")
    return (out, 0) if rc == 0 else (None, rc)


def _samples() -> list[tuple[str, np.ndarray]]:
    """Test JPEGs made by the installed OpenCV: natural-ish content (smooth gradients, edges, noise) at odd sizes,
    each chroma subsampling, grey, progressive, restart markers."""
    rng = np.random.default_rng(11)
    out = []
    for h, w in ((67, 93), (240, 321), (17, 8)):
        y, x = np.mgrid[0:h, 0:w]
        im = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], -1)
        im = np.clip(im + rng.normal(0, 18, im.shape), 0, 255).astype(np.uint8)
        im[h // 3:h // 2, w // 4:w // 2] = (20, 200, 90)  # a hard-edged block: chroma edges for the upsampler
        for name, params in (("4:2:0", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]),
                             ("4:2:2", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]),
                             ("4:4:4", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]),
                             ("progressive", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 80]),
                             ("restarts", [cv2.IMWRITE_JPEG_RST_INTERVAL, 3, cv2.IMWRITE_JPEG_QUALITY, 60])):
            out.append((f"{w}x{h} {name}", cv2.imencode(".jpg", im, params)[1]))
        out.append((f"{w}x{h} grey", cv2.imencode(".jpg", cv2.cvtColor(im, cv2.COLOR_BGR2GRAY))[1]))
    return out


def _self_check(fn) -> bool:
    """Whether the kernel gives ``cv2.imdecode``'s bytes on ``_samples()`` at every DCT scale (1, 1/2, 1/4, 1/8)."""
    for _, data in _samples():
        for f, flag in _READ.items():
            ref = cv2.imdecode(data, flag)
            if ref.ndim == 2:
                ref = cv2.cvtColor(ref, cv2.COLOR_GRAY2BGR)
            got, rc = run_native(fn, data, f, ref.shape[:2])
            if rc or not np.array_equal(got, ref):
                return False
    return True


def _decide() -> dict:
    fn, _, why = native.choose(lambda: native.built(native_kernel, "jpeg", ""), "YOLO_LOADER_JPEG", _self_check,
                               "jpeg", "JPEGs decode through cv2.imdecode (about 1.2x slower than the kernel)")
    return {"fn": fn, "why": why}


_setup = native.Once(_decide)  # every decode asks: no lock once it is set


def library() -> str:
    """The libjpeg-turbo the kernel was built against ("2.1.5"), or "" where it is not built."""
    try:
        v = native.load("jpeg").jpeg_turbo_version()
    except ImportError:
        return ""
    return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}" if v else "?"


def kernel() -> str:
    """Which route JPEG decode takes in this process: "native", or "opencv: <why>"."""
    s = _setup()
    return "native" if s["fn"] is not None else f"opencv: {s['why']}"


def declined() -> dict[str, int]:
    """JPEGs the kernel handed to ``cv2.imdecode`` in this process, by reason."""
    with _lock:
        return dict(_declined)


def _count(rc: int) -> None:
    reason = REASONS.get(rc, f"code {rc}")
    with _lock:
        first = reason not in _declined
        _declined[reason] = _declined.get(reason, 0) + 1
    if first:
        LOG.warning("JPEG decode: an image went to cv2.imdecode (%s; slower, same pixels); further ones are counted "
                    "in the CPU engine's stats (jpeg_declined)", reason)


def decode_jpeg(buf: np.ndarray, scale: int, hw: tuple[int, int]) -> np.ndarray | None:
    """What ``cv2.imdecode(buf, IMREAD_COLOR or IMREAD_REDUCED_COLOR_<scale>)`` returns, through the kernel where it
    takes the image (a BGR (h, w, 3) array of the expected, already reduced and upright size ``hw``), else through
    OpenCV itself (whatever it returns: None for no image, grey, four channels, another size)."""
    fn = _setup()["fn"]
    if fn is not None:
        im, rc = run_native(fn, buf, scale, hw)
        if rc == 0:
            return im
        _count(rc)
    return cv2.imdecode(buf, _READ[scale])
