"""Polygon labels in detection training, against Ultralytics 8.4 on the same data.

Stock keeps a polygon label's outline through mosaic and the warp and takes the box from the warped outline
(``segment2box``), keeping boxes down to 1 % of their area. Checked here: the index reads the same boxes and
polygons as ``YOLODataset``; on identical plans (mosaic, rotation, shear, mixup, CutMix, flips) every box equals
the one Ultralytics' own transforms give; over thousands of samples of Ultralytics' real training pipeline with
``degrees=10``, box areas and boxes per image follow the same distributions, which the old box-corner path
(polygons dropped) does not: the control that shows this test can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ultralytics  # noqa: F401  (a dependency: missing fails, never skips)
from distributions import same_distribution
from loader.dataset import build_index
from loader.demo_data import make_demo_dataset
from loader.plan import Planner
from loader.plan.planner import CUT_AREA_DRAWS, CUT_CHOICE_DRAW
from ultralytics_chain import stock_boxes, ul_dataset, ul_full

S = 320
DENSE = {0: 1200, 7: 1500}  # image -> points of its first outline (over stock's 1,000: resampled to more points)


def _ellipse(row: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    _, x, y, w, h = row
    return np.clip(np.stack([x + w / 2 * np.cos(t), y + h / 2 * np.sin(t)], 1), 0, 1)


def _label_rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def polygon_set(tmp_path_factory):
    """40 images at 640x360 with outline labels; two images' first outline replaced by a dense ellipse."""
    y = make_demo_dataset(tmp_path_factory.mktemp("polygons"), count=40, val_count=4, size=(640, 360), seed=3,
                          polygons=True, workers=1)
    labels = sorted((y.parent / "labels" / "train").glob("*.txt"))
    for k, n in DENSE.items():
        rows = _label_rows(labels[k])
        assert rows, f"image {k} needs an object"
        pts = np.array(rows[0][1:]).reshape(-1, 2)
        box = [rows[0][0], *(pts.min(0) + pts.max(0)) / 2, *(pts.max(0) - pts.min(0))]
        rows[0] = [rows[0][0], *_ellipse(np.array(box), n).ravel()]
        labels[k].write_text("".join(f"{int(r[0])} " + " ".join(f"{v:.6f}" for v in r[1:]) + "\n" for r in rows))
    return y


def test_index_reads_the_boxes_and_polygons_ultralytics_reads(polygon_set):
    index = build_index(polygon_set, verbose=False)
    ds = ul_dataset(polygon_set, S)
    assert index.has_polygons and len(index) == len(ds.labels) == 40
    for i, theirs in enumerate(ds.labels):
        ours = index.labels[i]
        assert np.array_equal(ours["bboxes"], theirs["bboxes"]) and np.array_equal(ours["cls"], theirs["cls"]), i
        assert len(ours["segments"]) == len(theirs["segments"]) == len(ours["cls"]), i
        assert all(np.array_equal(a, b) for a, b in zip(ours["segments"], theirs["segments"])), i
    assert max(len(s) for s in index.labels[7]["segments"]) == DENSE[7]
    again = build_index(polygon_set, verbose=False)  # from the index cache
    assert again.build_info["cache"] == "hit"
    assert np.array_equal(again.seg_off, index.seg_off) and np.array_equal(again.seg_xy, index.seg_xy)
    # classes: the polygons of the rows kept, in order, as Ultralytics' update_labels
    ours = build_index(polygon_set, verbose=False, classes=[1, 2])
    theirs = ul_dataset(polygon_set, S)
    theirs.update_labels(include_class=[1, 2])
    assert sum(len(lb["segments"]) for lb in theirs.labels) == len(ours.cls) > 0
    for i, lb in enumerate(theirs.labels):
        assert all(np.array_equal(a, b) for a, b in zip(ours.labels[i]["segments"], lb["segments"], strict=True)), i


def test_split_mixing_boxes_and_polygons_trains_on_boxes_as_stock(polygon_set, copy_of, caplog):
    """Stock drops every polygon of a split whose label rows are not all polygons (and warns); so do we, with
    a warning and the count in ``build_info``. A file mixing both kinds in itself is skipped, named, as
    bad label rows (stock would read a box row as a 2-point polygon and train on a wrong box)."""
    y = copy_of(polygon_set)
    labels = sorted((y.parent / "labels" / "train").glob("*.txt"))
    rows = _label_rows(labels[3])
    pts = np.array(rows[0][1:]).reshape(-1, 2)
    centre, size = (pts.min(0) + pts.max(0)) / 2, np.ptp(pts, 0)
    labels[3].write_text(f"{int(rows[0][0])} {centre[0]:.6f} {centre[1]:.6f} {size[0]:.6f} {size[1]:.6f}\n")
    mixed_file = labels[5].read_text() + "0 0.5 0.5 0.1 0.1\n"
    labels[5].write_text(mixed_file)
    index = build_index(y, verbose=False)
    assert not index.has_polygons and index.build_info["polygons_dropped"] > 0
    assert "only the boxes are used" in caplog.text
    assert [s.reason for s in index.skipped] == ["bad label rows"] and "mix" in index.skipped[0].detail
    theirs = ul_dataset(y, S)
    assert all(len(lb["segments"]) == 0 for lb in theirs.labels)


SETTINGS = {
    "degrees10": {"degrees": 10.0},
    "rotate-shear-scale": {"degrees": 25.0, "shear": 8.0, "scale": 0.9},
    "no-mosaic": {"mosaic": 0.0, "degrees": 30.0},
    "mixup-cutmix-flips": {"mixup": 1.0, "cutmix": 1.0, "degrees": 10.0, "flipud": 0.5},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_same_plan_same_boxes_as_ultralytics(polygon_set, setting):
    """Every sample of an epoch (40 plans per setting) through Ultralytics' Mosaic, RandomPerspective (its
    ``apply_segments`` + ``segment2box``), MixUp, CutMix and RandomFlip with our plan's parameters: the same
    boxes in the same order (measured: at most 3.1e-4 px apart, float32 rounding), the same classes."""
    index = build_index(polygon_set, verbose=False)
    ds = ul_dataset(polygon_set, S)
    planner = Planner(index, S, SETTINGS[setting], batch_size=8, seed=1)
    positions = np.arange(len(index))
    batch = planner.plan_batch(0, positions, np.arange(len(index)))
    uc = planner.cut_draws(0, positions)
    n_boxes, worst = 0, 0.0
    for j in range(len(batch)):
        plan = batch.plan(j)
        draws = np.concatenate([uc[j, CUT_AREA_DRAWS], [uc[j, CUT_CHOICE_DRAW]]]) if plan.cut is not None else None
        ref = ul_full(ds, plan, draws)
        assert np.array_equal(ref["cls"].numpy().reshape(-1), plan.cls), (setting, j)
        assert ref["bboxes"].shape == plan.boxes.shape, (setting, j)
        if len(plan.boxes):
            worst = max(worst, float(np.abs(ref["bboxes"].numpy() - plan.boxes).max()) * S)
        n_boxes += len(plan.boxes)
    print(setting, n_boxes, "boxes, worst difference", worst, "px")
    assert n_boxes > 150 and worst < 1e-3, (n_boxes, worst)


N_IMAGES, SAMPLES, S_DIST = 256, 6144, 128


@pytest.fixture(scope="module")
def polygon_tiny(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("polytiny"), count=N_IMAGES, val_count=4, size=(192, 108),
                             seed=9, polygons=True)


@pytest.mark.slow
def test_box_distributions_match_stock_with_rotation(polygon_tiny):
    """``degrees=10``, default hyp otherwise: Ultralytics' training pipeline (``build_yolo_dataset``, ``ds[i]``)
    and the planner, 6,144 samples each: boxes per image, box widths, heights and areas within their sampling
    error (means and SDs within 4.5 SE, KS under its 1e-4 critical value). Control: the same planner without
    the polygons (box corners warped, 10 % area rule, what this loader did before) fails the area comparison."""
    hyp = {"degrees": 10.0}
    theirs_n, theirs_b = stock_boxes(polygon_tiny, S_DIST, hyp, 16, SAMPLES, seed=2)

    def ours(index):
        planner = Planner(index, S_DIST, hyp, batch_size=16, seed=2)
        order = np.arange(N_IMAGES)
        n, b = [], []
        for e in range(SAMPLES // N_IMAGES):
            batch = planner.plan_batch(e, order, order, prev_order=order if e else None)
            n += np.diff(batch.box_off).tolist()
            b.append(batch.boxes)
        return n, np.concatenate(b)

    index = build_index(polygon_tiny, verbose=False, cache=False)
    assert index.has_polygons
    ours_n, ours_b = ours(index)
    same_distribution(ours_n, theirs_n, "boxes per image")
    same_distribution(ours_b[:, 2], theirs_b[:, 2], "box width")
    same_distribution(ours_b[:, 3], theirs_b[:, 3], "box height")
    area = lambda b: b[:, 2] * b[:, 3]  # noqa: E731
    same_distribution(area(ours_b), area(theirs_b), "box area")
    corners = build_index(polygon_tiny, verbose=False, cache=False)
    corners.seg_off, corners.seg_xy = np.zeros_like(corners.seg_off), np.zeros((0, 2), np.float32)
    _, corner_b = ours(corners)
    print("median box area vs stock: polygons %.3f, box corners %.3f" % (
        np.median(area(ours_b)) / np.median(area(theirs_b)), np.median(area(corner_b)) / np.median(area(theirs_b))))
    with pytest.raises(AssertionError, match="box area"):
        same_distribution(area(corner_b), area(theirs_b), "box area")


def test_short_training_on_polygon_labels(polygon_set, tmp_path):
    """One epoch through ``FastDetectionTrainer`` on the polygon set (rotation on): the trainer's dataset labels
    carry the polygons as stock's do, the batches' boxes come from them, the losses are finite."""
    import math

    import torch
    from ultralytics import YOLO

    from integration.ultralytics import FastDetectionTrainer

    model = YOLO("yolo11n.yaml")
    model.train(data=str(polygon_set), imgsz=64, epochs=1, batch=4, device="cpu", plots=False, project=str(tmp_path),
                name="poly", trainer=FastDetectionTrainer, verbose=False, amp=False, workers=0, close_mosaic=0,
                degrees=10.0)
    ds = model.trainer.train_loader.dataset
    assert sum(len(lb["segments"]) for lb in ds.labels) == sum(len(lb["cls"]) for lb in ds.labels) > 0
    assert model.trainer.train_loader.loader.index.has_polygons
    tl = model.trainer.tloss
    losses = tl.values() if isinstance(tl, dict) else torch.as_tensor(tl).flatten()
    assert all(math.isfinite(float(v)) for v in losses)
