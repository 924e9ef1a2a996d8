"""What the DCT-reduced JPEG decode does to training images, per scale factor: sharpness and cost.

    python benchmarks/decode_sharpness.py [--n 60] [--json F]

For each source size and training size, the same demo JPEGs are loaded at Ultralytics' load size twice:
as Ultralytics does (full decode, INTER_LINEAR resize: no antialiasing, aliased when the factor is below
1/2) and DCT-reduced (libjpeg's 1/2, 1/4, 1/8 IDCT scaling, then INTER_LINEAR the rest of the way). Reported:
the mean Laplacian variance (sharpness) of each and their ratio, the mean absolute pixel difference, and
the decode + resize time of each on one thread (medians over 3 passes). A ratio near 1 means the reduced
decode trains on images like stock's; far from 1, it changes what the model sees.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loader.images import decode_resized, read_bytes, reduction_for  # noqa: E402
from loader.plan import load_size  # noqa: E402

CASES = [((1920, 1080), 896), ((1920, 1080), 640), ((1920, 1080), 480), ((3840, 2160), 896),
         ((1280, 720), 896), ((1280, 720), 640), ((1280, 720), 512), ((640, 480), 320), ((640, 480), 256),
         ((640, 480), 160)]


def lapvar(im: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def measure(files: list[Path], hw0: tuple[int, int], imgsz: int) -> dict:
    hw = load_size(*hw0, imgsz)
    blobs = [read_bytes(str(f)) for f in files]
    rows = {}
    for name, reduce in (("full", False), ("reduced", True)):
        times, ims = [], None
        for _ in range(3):
            t = time.perf_counter()
            ims = [decode_resized(b, hw0, hw, True, reduce) for b in blobs]
            times.append((time.perf_counter() - t) / len(blobs) * 1000)
        rows[name] = (ims, statistics.median(times))
    full, reduced = rows["full"][0], rows["reduced"][0]
    lf, lr = np.mean([lapvar(a) for a in full]), np.mean([lapvar(a) for a in reduced])
    return {"source": f"{hw0[1]}x{hw0[0]}", "imgsz": imgsz, "load_hw": hw, "scale": round(hw[0] / hw0[0], 3),
            "dct_factor": reduction_for(*hw0, *hw, True), "lapvar_full": lf, "lapvar_reduced": lr,
            "sharpness_ratio": lr / lf, "mad": float(np.mean([np.abs(a.astype(int) - b).mean()
                                                              for a, b in zip(full, reduced)])),
            "ms_full": rows["full"][1], "ms_reduced": rows["reduced"][1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="images per source size")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    from loader.demo_data import make_demo_dataset

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for (w, h) in sorted({c[0] for c in CASES}):
            data = make_demo_dataset(Path(tmp) / f"{w}x{h}", count=a.n, val_count=0, size=(w, h), seed=3)
            files = sorted((data.parent / "images" / "train").glob("*.jpg"))
            for (cw, ch), imgsz in CASES:
                if (cw, ch) == (w, h):
                    out.append(measure(files, (h, w), imgsz))
    print(f"{'source':>10s} {'imgsz':>5s} {'scale':>6s} {'DCT':>4s} {'sharpness reduced/full':>23s} {'MAD':>6s} "
          f"{'ms full':>8s} {'ms reduced':>10s}")
    for r in out:
        print(f"{r['source']:>10s} {r['imgsz']:5d} {r['scale']:6.3f} {'1/' + str(r['dct_factor']):>4s} "
              f"{r['sharpness_ratio']:23.3f} {r['mad']:6.2f} {r['ms_full']:8.2f} {r['ms_reduced']:10.2f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
