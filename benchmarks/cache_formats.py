"""Disk-cache formats at training size: load time and bytes per image (one thread, medians).

    python benchmarks/cache_formats.py --data DATA.yaml [--imgsz 896] [--n 60]

Candidates: raw uint8 .npy read with mmap (and touched, as a painter would), raw .npy read
into memory, JPEG q95 at training size, PNG (fast compression), WebP lossless. The source JPEG
decoded and resized on every load (no cache) is the baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from stages import stage_setup, time_per_item

from loader.images import decode_resized, read_bytes
from loader.plan import load_size


def main() -> None:
    a, ix = stage_setup(60)
    n = min(a.n, len(ix))
    srcs = [ix.im_files[i] for i in range(n)]
    hw = [load_size(*(int(v) for v in ix.shapes[i]), a.imgsz) for i in range(n)]
    imgs = [decode_resized(read_bytes(s), tuple(ix.shapes[i]), hw[i], True, reduce=True) for i, s in enumerate(srcs)]
    tmp = Path(tempfile.mkdtemp(prefix="cache-formats-"))
    writers = {
        "npy": (lambda p, im: np.save(p, im), lambda p: np.asarray(np.load(p, mmap_mode="r")).sum(dtype=np.uint64)),
        "npy (read)": (None, lambda p: np.load(p).sum(dtype=np.uint64)),
        "jpg q95": (lambda p, im: cv2.imwrite(str(p), im, [cv2.IMWRITE_JPEG_QUALITY, 95]),
                    lambda p: cv2.imread(str(p)).sum(dtype=np.uint64)),
        "png (level 1)": (lambda p, im: cv2.imwrite(str(p), im, [cv2.IMWRITE_PNG_COMPRESSION, 1]),
                          lambda p: cv2.imread(str(p)).sum(dtype=np.uint64)),
        "webp lossless": (lambda p, im: cv2.imwrite(str(p), im, [cv2.IMWRITE_WEBP_QUALITY, 101]),
                          lambda p: cv2.imread(str(p)).sum(dtype=np.uint64)),
    }
    ext = {"npy": ".npy", "npy (read)": ".npy", "jpg q95": ".jpg", "png (level 1)": ".png", "webp lossless": ".webp"}
    rows = []

    base = time_per_item(lambda k: decode_resized(read_bytes(srcs[k]), tuple(ix.shapes[k]), hw[k], True).sum(dtype=np.uint64),
                 range(n))
    rows.append(("source JPEG, decode + resize (no cache)", base, np.mean([Path(s).stat().st_size for s in srcs])))
    for name, (write, read) in writers.items():
        paths = [tmp / f"{k}{ext[name]}" for k in range(n)]
        if write:
            for p, im in zip(paths, imgs):
                write(p, im)
        rows.append((name, time_per_item(read, paths), np.mean([p.stat().st_size for p in paths])))
    mad = np.mean([np.abs(cv2.imread(str(tmp / f"{k}.jpg")).astype(int) - imgs[k]).mean() for k in range(n)])
    print(f"{n} images at imgsz {a.imgsz} ({hw[0][1]}x{hw[0][0]}); page cache warm; one thread")
    for name, ms, size in rows:
        print(f"{name:42s} {ms:7.2f} ms/img {size / 2**20:7.2f} MiB/img")
    print(f"jpg q95 mean absolute pixel error vs the uncached pixels: {mad:.2f} grey levels (lossy: not offered)")


if __name__ == "__main__":
    main()
