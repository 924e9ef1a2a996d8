"""Per-stage timings of the CPU engine's candidate implementations (one thread, medians).

    python benchmarks/stages.py [--data DATA.yaml] [--imgsz 896] [--n 40]

Decides, by measurement, which library does each step: JPEG decode (OpenCV full / DCT-reduced vs the native
libjpeg-turbo kernel vs Pillow-SIMD draft), resize (OpenCV INTER_LINEAR vs the native kernel's same bytes vs Pillow
BILINEAR), the tile warp (OpenCV warpAffine with each border mode; a mosaic window composed and warped vs read
in place by the native warp kernel), HSV. Prints milliseconds per image.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import cv2
import numpy as np
from PIL import Image

from loader.kernels.hsv import opencv_three_passes as hsv_opencv
from loader.kernels.hsv import apply_hsv, hsv_luts_batch
from loader.kernels.hsv import kernel as hsv_kernel
from loader.kernels.jpeg import decode_jpeg
from loader.kernels.jpeg import kernel as jpeg_kernel
from loader.kernels.resize import kernel as resize_kernel
from loader.kernels.resize import resize_linear
from loader.kernels.warp import kernel as warp_kernel
from loader.kernels.warp import warp_pastes
from loader.allocator import tune_allocator
from loader.dataset import build_index
from loader.plan import load_size


def time_per_item(fn, items, repeat: int = 3) -> float:
    """Median over ``repeat`` runs of milliseconds per item of ``fn`` over ``items``."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for x in items:
            fn(x)
        runs.append((time.perf_counter() - t) / len(items) * 1000)
    return statistics.median(runs)


def stage_setup(default_n: int):
    """Arguments (--data, --imgsz, --n) and the index; OpenCV single-threaded and glibc's allocator set, as under
    the CPU engine's painter threads."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--imgsz", type=int, default=896)
    ap.add_argument("--n", type=int, default=default_n)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    tune_allocator()
    return a, build_index(a.data, verbose=False)


def main() -> None:
    a, ix = stage_setup(40)
    files = [ix.im_files[i] for i in range(min(a.n, len(ix)))]
    blobs = [np.fromfile(f, np.uint8) for f in files]
    h0, w0 = (int(v) for v in ix.shapes[0])
    h, w = load_size(h0, w0, a.imgsz)
    rows = []

    def pil_draft(b):
        im = Image.open(io.BytesIO(b.tobytes()))
        im.draft("RGB", (w0 // 2, h0 // 2))
        return np.asarray(im.convert("RGB"))

    rows.append(("decode: OpenCV full", time_per_item(lambda b: cv2.imdecode(b, cv2.IMREAD_COLOR), blobs)))
    rows.append((f"decode: decode_jpeg ({jpeg_kernel()}) full",
                 time_per_item(lambda b: decode_jpeg(b, 1, (h0, w0)), blobs)))
    rows.append(("decode: OpenCV DCT 1/2", time_per_item(lambda b: cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_2), blobs)))
    rows.append(("decode: Pillow-SIMD draft 1/2", time_per_item(pil_draft, blobs)))
    half = [cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_2) for b in blobs]
    rows.append((f"resize: OpenCV INTER_LINEAR {half[0].shape[1]}->{w}",
                 time_per_item(lambda im: cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR), half)))
    full = [cv2.imdecode(b, cv2.IMREAD_COLOR) for b in blobs[:10]]  # 10 frames held (6 MB each at 1080p)
    rows.append((f"resize: OpenCV INTER_LINEAR {w0}->{w}",
                 time_per_item(lambda im: cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR), full)))
    rows.append((f"resize: resize_linear ({resize_kernel()}) {w0}->{w}",
                 time_per_item(lambda im: resize_linear(im, (h, w)), full)))
    pil_half = [Image.fromarray(im) for im in half]
    rows.append((f"resize: Pillow-SIMD BILINEAR {half[0].shape[1]}->{w}",
                 time_per_item(lambda im: im.resize((w, h), Image.BILINEAR), pil_half)))
    tiles = [cv2.resize(im, (w, h)) for im in half]
    out = np.empty((a.imgsz, a.imgsz, 3), np.uint8)
    M = np.array([[0.8, 0, 30.5], [0, 0.8, 20.25]])
    for name, mode in (("replicate", cv2.BORDER_REPLICATE), ("constant", cv2.BORDER_CONSTANT)):
        rows.append((f"warp: warpAffine {a.imgsz}^2 border {name}",
                     time_per_item(lambda t: cv2.warpAffine(t, M, (a.imgsz, a.imgsz), dst=out, borderMode=mode), tiles)))
    # a 2x2 mosaic window of four tiles, scaled 0.8 into the output: composed and warped (the OpenCV route) or
    # read in place by the kernel (the route for matrices without rotation or shear)
    canvas = np.empty((2 * h, 2 * w, 3), np.uint8)
    pastes = [(q, 0, 0, h, w, h * (q // 2), w * (q % 2)) for q in range(4)]
    M3 = np.vstack([M, [0, 0, 1]])

    def composed(k):
        ims = [tiles[(k + q) % len(tiles)] for q in range(4)]
        for q, _, _, th, tw, dy, dx in pastes:
            canvas[dy:dy + th, dx:dx + tw] = ims[q]
        cv2.warpAffine(canvas, M, (a.imgsz, a.imgsz), dst=out, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=(114, 114, 114))

    rows.append((f"warp: 2x2 mosaic composed + warpAffine {a.imgsz}^2", time_per_item(composed, range(len(tiles)))))
    rows.append((f"warp: warp_pastes ({warp_kernel()}) {a.imgsz}^2",
                 time_per_item(lambda k: warp_pastes([tiles[(k + q) % len(tiles)] for q in range(4)], pastes,
                                                     canvas.shape[:2], M3, out), range(len(tiles)))))
    r = np.array([0.01, 0.3, -0.2])
    lut = hsv_luts_batch(r)[0]
    rows.append((f"hsv: cvtColor + LUT + cvtColor {a.imgsz}^2", time_per_item(lambda t: hsv_opencv(out, lut, True), tiles)))
    rows.append((f"hsv: apply_hsv ({hsv_kernel()}) {a.imgsz}^2", time_per_item(lambda t: apply_hsv(out, r, True), tiles)))
    for name, ms in rows:
        print(f"{name:48s} {ms:7.2f} ms")


if __name__ == "__main__":
    main()
