"""Which JPEG decoder and resize implementation this process uses, reported once.

Throughput depends on them more than on anything in Python: Pillow-SIMD vs Pillow,
libjpeg-turbo vs libjpeg, and whether OpenCV dispatches AVX2 kernels.
"""

from __future__ import annotations

import functools
import logging
import re
from importlib import metadata

__all__ = ["backend_report", "log_backend_report_once"]

LOG = logging.getLogger("loader.imaging")


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def backend_report() -> dict:
    """Facts about the imaging libraries in this process (cached)."""
    import cv2
    import PIL
    from PIL import features

    build = cv2.getBuildInformation()
    m = re.search(r"^\s*JPEG:\s*(.+)$", build, re.M)
    cv_jpeg = m.group(1).strip() if m else "unknown"
    simd = _dist_version("pillow-simd")
    try:  # OpenCV 5's Python module has no CPU_* constants: 11 is CV_CPU_AVX2
        avx2 = bool(cv2.checkHardwareSupport(getattr(cv2, "CPU_AVX2", 11)))
    except Exception:
        avx2 = False
    return {
        "pillow": PIL.__version__,
        "pillow_distribution": "pillow-simd" if simd else "pillow",
        "pillow_libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
        "pillow_jpeg_version": features.version("jpg"),
        "opencv": cv2.__version__,
        "opencv_jpeg": cv_jpeg,
        "cpu_avx2": avx2,
        "opencv_threads": cv2.getNumThreads(),
        # What the CPU engine uses for each step; the OpenCV kernel (loader/kernels/opencv.py) keeps this current.
        "jpeg_decoder": f"{_jpeg_route(f'OpenCV {cv2.__version__} imdecode ({cv_jpeg})')}, DCT-reduced only where "
                        f"that gives Ultralytics' images (a target of exactly 1/2; reduced_decode=True: wherever it "
                        f"can)",
        "resize": f"OpenCV cv2.resize INTER_LINEAR's bytes ({_resize_route(avx2)})",
    }


def _jpeg_route(opencv: str) -> str:
    from .kernels import jpeg

    route = jpeg.kernel()
    return f"libjpeg-turbo {jpeg.library()} into the output rows (the native kernel: cv2.imdecode's bytes)" \
        if route == "native" else f"{opencv}; {route}"


def _resize_route(avx2: bool) -> str:
    from .kernels import resize

    route = resize.kernel()
    return "the native AVX-512 kernel" if route == "native" else \
        f"cv2.resize, {'AVX2' if avx2 else 'baseline'} kernels; {route}"


def describe() -> str:
    r = backend_report()
    pil = f"{r['pillow_distribution']} {r['pillow']} (libjpeg{'-turbo' if r['pillow_libjpeg_turbo'] else ''} " \
          f"{r['pillow_jpeg_version']})"
    return f"JPEG decode: {r['jpeg_decoder']}; resize: {r['resize']}; PIL: {pil}"


@functools.lru_cache(maxsize=1)
def log_backend_report_once() -> str:
    line = describe()
    LOG.info(line)
    return line
