"""Boxes from polygon labels: our planner against Ultralytics' training pipeline on the same polygon set.

Stock takes each box from the warped outline; a box-corner path (what this loader did before polygons were
kept) makes rotated boxes larger. This script measures, on a demo set with outline labels: box area (median and
mean) and boxes per image, for Ultralytics (``build_yolo_dataset`` + ``ds[i]``), ours with polygons, and ours
with the polygons dropped (the control), each as a ratio to stock with its standard error; and what the
polygons cost the planner per batch.

    .venv/bin/python benchmarks/polygon_boxes.py                     # 512 images, 320 px, degrees 10, 150 batches
    .venv/bin/python benchmarks/polygon_boxes.py --degrees 0 --batches 50
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def _stock(data_yaml: Path, imgsz: int, hyp: dict, batch: int, n: int, seed: int):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    ds = build_yolo_dataset(get_cfg(overrides={"imgsz": imgsz, **hyp}), data["train"], batch, data, mode="train",
                            stride=32)
    random.seed(seed)
    np.random.seed(seed)
    order = np.random.default_rng(seed).permutation(len(ds))
    counts, boxes = [], []
    for j in range(n):
        out = ds[int(order[j % len(ds)])]
        counts.append(len(out["cls"]))
        boxes.append(out["bboxes"].numpy().reshape(-1, 4))
    return np.array(counts), np.concatenate(boxes)


def _ours(index, imgsz: int, hyp: dict, batch: int, n: int, seed: int):
    from loader.plan import Planner
    from loader.sampler import epoch_order

    planner = Planner(index, imgsz, hyp, batch_size=batch, seed=seed)
    counts, boxes, e, prev = [], [], 0, None
    while sum(len(c) for c in counts) < n:
        order = epoch_order(len(index), seed, e)
        for a in range(0, len(order), batch):
            b = planner.plan_batch(e, np.arange(a, min(a + batch, len(order))), order, prev_order=prev)
            counts.append(np.diff(b.box_off))
            boxes.append(b.boxes)
        prev, e = order, e + 1
    c = np.concatenate(counts)[:n]
    return c, np.concatenate(boxes)


def _ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """mean(a) / mean(b) and its standard error (delta method)."""
    ma, mb = a.mean(), b.mean()
    r = ma / mb
    return r, r * math.hypot(a.std(ddof=1) / math.sqrt(len(a)) / ma, b.std(ddof=1) / math.sqrt(len(b)) / mb)


def _plan_ms(index, imgsz: int, hyp: dict, batch: int, rounds: int = 5) -> tuple[float, float]:
    from loader.plan import Planner

    planner = Planner(index, imgsz, hyp, batch_size=batch, seed=0)
    order = np.arange(len(index))
    pos = np.arange(batch) % len(index)
    planner.plan_batch(0, pos, order)
    t = []
    for e in range(rounds):
        t0 = time.perf_counter()
        planner.plan_batch(e + 1, pos, order)
        t.append((time.perf_counter() - t0) * 1000)
    return float(np.median(t)), float(np.ptp(t))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=150)
    ap.add_argument("--degrees", type=float, default=10.0)
    ap.add_argument("--data", type=Path, help="a polygon-labelled data.yaml (default: a demo set in a temp folder)")
    a = ap.parse_args(argv)
    from loader.dataset import build_index
    from loader.demo_data import make_demo_dataset

    tmp = tempfile.TemporaryDirectory()
    data = a.data or make_demo_dataset(Path(tmp.name) / "poly", count=a.images, val_count=4, size=(640, 480),
                                       seed=21, polygons=True)
    hyp = {"degrees": a.degrees}
    n = a.batches * a.batch
    index = build_index(data, verbose=False, cache=False)
    corners = build_index(data, verbose=False, cache=False)
    corners.seg_off, corners.seg_xy = np.zeros_like(corners.seg_off), np.zeros((0, 2), np.float32)
    rows = {"stock (Ultralytics)": _stock(data, a.imgsz, hyp, a.batch, n, 0),
            "ours, polygons": _ours(index, a.imgsz, hyp, a.batch, n, 0),
            "ours, box corners (control)": _ours(corners, a.imgsz, hyp, a.batch, n, 0)}
    sc, sb = rows["stock (Ultralytics)"]
    s_area = sb[:, 2] * sb[:, 3] * a.imgsz ** 2
    print(f"{len(index)} images with polygon labels, {a.imgsz} px, degrees {a.degrees}, {n} samples per row")
    print(f"{'':30s} {'boxes/img':>9s} {'ratio':>13s} {'median area':>11s} {'ratio':>6s} {'mean area':>9s} "
          f"{'ratio':>13s}")
    for name, (c, b) in rows.items():
        area = b[:, 2] * b[:, 3] * a.imgsz ** 2
        rc, ec = _ratio(c.astype(float), sc.astype(float))
        ra, ea = _ratio(area, s_area)
        print(f"{name:30s} {c.mean():9.3f} {rc:7.3f}±{ec:.3f} {np.median(area):11.1f} "
              f"{np.median(area) / np.median(s_area):6.3f} {area.mean():9.1f} {ra:7.3f}±{ea:.3f}")
    for name, ix in (("polygons", index), ("box corners", corners)):
        med, spread = _plan_ms(ix, 896, hyp, 128)
        print(f"planner, batch 128 at 896 px, {name}: {med:.1f} ms (spread {spread:.1f}, 5 rounds)")


if __name__ == "__main__":
    main()
