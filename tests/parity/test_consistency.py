"""Pixel/box consistency: every planned box tightly encloses its object's painted pixels.

A flat demo set (grey background, solid rectangles, one unique colour per object) is
painted through the real pipeline (decode, resize, painter) for 500+ random plans with
rotation, shear, perspective, flips and mixup. For each output box, the pixels of the
colour dominating the box are found again, and the box must match their extent
(IoU >= 0.9). HSV is off here: it moves colours, not pixels (its parity with
Ultralytics is tested in ``test_parity_ultralytics``).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from loader import DetectionLoader
from loader.demo_data import PALETTE, make_demo_dataset
from loader.plan import Planner
from loader.sampler import epoch_order

S = 640
HYP = {"degrees": 30.0, "shear": 10.0, "perspective": 0.0005, "flipud": 0.5, "fliplr": 0.5, "mixup": 0.3,
       "translate": 0.2, "scale": 0.5, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0}
PAL = np.array(PALETTE, np.int16)  # BGR
# palette colours sit on a 6-level grid: (b, g, r) levels -> palette id (-1: not a palette colour)
LUT = np.full((6, 6, 6), -1, np.int32)
for _k, (_b, _g, _r) in enumerate(PALETTE):
    LUT[_b // 51, _g // 51, _r // 51] = _k


@pytest.fixture(scope="module")
def flat_set(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("flat"), count=20, val_count=0, size=(640, 360), seed=3,
                             flat=True)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _check(img_rgb: np.ndarray, boxes_xywh: np.ndarray, stats: dict, rotated: bool) -> None:
    bgr = img_rgb[..., ::-1].astype(np.int16)
    for x, y, w, h in boxes_xywh * S:
        box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        if w < 8 or h < 8:  # a few pixels: edges are all there is
            stats["tiny"] += 1
            continue
        if rotated and (box[0] < 0.5 or box[1] < 0.5 or box[2] > S - 0.5 or box[3] > S - 0.5):
            # Ultralytics' rule: the box of the warped corners, then clipped. For a rotated object cut
            # by the border that box still spans the cut-off corner: loose by design (we match it).
            stats["rotated_at_border"] += 1
            continue
        m = 3
        x0, y0 = max(int(box[0]) - m, 0), max(int(box[1]) - m, 0)
        x1, y1 = min(int(np.ceil(box[2])) + m, S), min(int(np.ceil(box[3])) + m, S)
        # palette id of every pixel in the window (-1: none within tolerance)
        q = np.rint(bgr[y0:y1, x0:x1] / 51).astype(np.int32)
        close = (np.abs(bgr[y0:y1, x0:x1] - q * 51) < 24).all(-1)
        win = np.where(close, LUT[q[..., 0], q[..., 1], q[..., 2]], -1)
        inner = win[int(box[1]) - y0:int(np.ceil(box[3])) - y0, int(box[0]) - x0:int(np.ceil(box[2])) - x0]
        vals = np.unique(inner[inner >= 0])
        assert len(vals), f"no object pixels inside box {box}"
        # the object this box stands for: among the colours inside it, the one whose pixels fit it best
        # (boxes of tilted objects overlap, so the most frequent colour can be a neighbour's)
        best = None
        px = bgr[y0:y1, x0:x1].astype(np.float64)
        for v in vals:
            core = (win == v).astype(np.uint8)
            near = cv2.dilate(core, np.ones((3, 3), np.uint8)).astype(bool)
            # coverage t of each pixel by the object: its position on the colour line from a grey
            # (background 60 or fill 114) to the object's colour; edges are then located to a fraction
            # of a pixel (a pixel [x, x+1) covered t from the right puts the left edge at x + 1 - t)
            cov = np.zeros(near.shape)
            for g in (60.0, 114.0):
                c = PAL[v] - g
                t = ((px - g) @ c) / (c @ c)
                resid = np.linalg.norm(px - g - t[..., None] * c, axis=-1)
                cov = np.maximum(cov, np.where(resid < 25, np.clip(t, 0, 1), 0))
            ys, xs = np.nonzero(near & (cov > 0.15))
            if len(ys) == 0:
                continue
            t = cov[ys, xs]
            cand = (x0 + (xs + 1 - t).min(), y0 + (ys + 1 - t).min(), x0 + (xs + t).max(), y0 + (ys + t).max())
            if best is None or _iou(box, cand) > _iou(box, best):
                best = cand
        found = best
        # every edge within 2.5 px (+2 % of the box side) of the object's pixel extent (a tilted corner tapers to a point whose last
        # pixels are too faint to see, and interpolation blurs edges by about 1 px) ...
        err = max(abs(float(u) - float(v)) for u, v in zip(box, found))
        stats["edge_err"].append(err)
        assert err <= 2.5 + 0.02 * max(w, h), f"box {np.round(box, 1)} vs object pixels {found}: edge off by {err:.2f} px"
        # ... and IoU >= 0.9 where the box is large enough for that to be measurable (>= 32 px a side)
        if w >= 32 and h >= 32:
            iou = _iou(box, found)
            stats["ious"].append(iou)
            assert iou >= 0.9, f"box {np.round(box, 1)} vs object pixels {found}: IoU {iou:.3f}"


def _run(flat_set, hyp: dict, epochs: int, backend: str = "cpu") -> dict:
    from dataclasses import replace

    loader = DetectionLoader(flat_set, imgsz=S, batch_size=8, workers=1, hyp=hyp, backend=backend)
    planner = Planner(loader.index, S, hyp, batch_size=8, seed=5)

    def paint(plan, out):  # the engine's painter: OpenCV, or the DALI graph (tiles decoded by DALI)
        loader.engine.paint([plan], out[None])

    stats = {"ious": [], "edge_err": [], "tiny": 0, "rotated_at_border": 0, "plans": 0, "mixup": 0, "rotated": 0}
    try:
        for epoch in range(epochs):
            order = epoch_order(len(loader.index), 5, epoch)
            for pos in range(len(order)):
                plan = planner.train_plan(epoch, pos, order)
                stats["plans"] += 1
                stats["rotated"] += not plan.axis_aligned
                out = np.empty((S, S, 3), np.uint8)
                if plan.mix is None:
                    paint(plan, out)
                    _check(out, plan.boxes, stats, not plan.axis_aligned)
                    continue
                # mixup: each part painted alone must match its own boxes, and the blend must be exact
                stats["mixup"] += 1
                n_main = len(plan.boxes) - plan.mix_boxes
                main, part = replace(plan, mix=None), replace(plan.mix, hsv=None, keep_bgr=False)
                a, b = np.empty_like(out), np.empty_like(out)
                paint(main, a)
                paint(part, b)
                _check(a, plan.boxes[:n_main], stats, not plan.axis_aligned)
                _check(b, plan.boxes[n_main:], stats, not plan.mix.axis_aligned)
                paint(plan, out)
                blend = (a.astype(np.float64) * plan.mix_r + b * (1 - plan.mix_r)).astype(np.uint8)
                assert np.abs(out.astype(np.int16) - blend).max() <= 1
    finally:
        loader.close()
    print(f"plans {stats['plans']} ({stats['mixup']} mixup, {stats['rotated']} not axis-aligned), "
          f"boxes checked {len(stats['edge_err'])}, max edge error {max(stats['edge_err']):.2f} px, "
          f"IoU on {len(stats['ious'])} boxes >= 32 px: median {np.median(stats['ious']):.3f}, "
          f"min {min(stats['ious']):.3f}; under 8 px skipped {stats['tiny']}, rotated at the border skipped "
          f"{stats['rotated_at_border']}")
    return stats


def test_boxes_enclose_painted_objects_over_500_plans(flat_set):
    """Rotation, shear, perspective, flips and mixup."""
    stats = _run(flat_set, HYP, 26)
    assert stats["plans"] >= 500 and stats["mixup"] >= 50 and stats["rotated"] >= 400
    assert len(stats["edge_err"]) >= 1000 and len(stats["ious"]) >= 300, stats


def test_boxes_enclose_objects_painted_by_the_dali_graph(flat_set):
    """The DALI graph (CPU-only mode here): rotation, shear, flips, mixup (perspective is not affine: DALI
    hands such plans to the OpenCV painter)."""
    stats = _run(flat_set, {**HYP, "perspective": 0.0}, 6, "dali")
    assert stats["plans"] >= 100 and stats["mixup"] >= 10 and stats["rotated"] >= 80
    assert len(stats["edge_err"]) >= 200, stats


@pytest.mark.parametrize("backend", ["cpu", "dali"])
def test_boxes_enclose_painted_objects_default_geometry(flat_set, backend):
    """Default hyperparameters (scale + translate + flip): the direct tile-painting path; also painted by
    the DALI graph (CPU-only mode here)."""
    stats = _run(flat_set, {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "flipud": 0.5}, 6, backend)
    assert stats["plans"] >= 100 and stats["rotated"] == 0 and stats["rotated_at_border"] == 0
    assert len(stats["ious"]) >= 100
