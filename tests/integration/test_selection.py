"""``fraction``, ``classes`` and ``single_cls`` with Ultralytics' semantics: the images and labels our trainer
serves equal the stock trainer's datasets (train and val), and a short training runs with each (and with
``cutmix``) through ``FastDetectionTrainer``. (The val batches with ``classes`` / ``single_cls``, bitwise
against the stock trainer's: ``tests/parity/test_validator_exact.py``.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ultralytics  # noqa: F401  (a dependency: missing fails, never skips)
from integration.ultralytics import FastDetectionTrainer
from loader.dataset import build_index, fraction_count, select_labels
from loader.demo_data import make_demo_dataset

CASES = {
    "fraction-ratio": dict(fraction=0.4),
    "fraction-count": dict(fraction=7),
    "classes": dict(classes=[0, 2]),
    "single_cls": dict(single_cls=True),
    "all-three": dict(fraction=0.75, classes=[1], single_cls=True),
}
TRAIN_ONLY = {"cutmix": dict(cutmix=0.5)}  # an augmentation: nothing to compare in the datasets


@pytest.fixture(scope="module")
def sel_set(tmp_path_factory):
    """20 train and 8 val images of 3 classes (and two unreadable files among the candidates, which stock's
    fraction counts too)."""
    y = make_demo_dataset(tmp_path_factory.mktemp("sel"), count=20, val_count=8, size=(320, 240), seed=41)
    imgs = y.parent / "images" / "train"
    (imgs / "aaa_broken.jpg").write_bytes(b"not a jpeg")  # sorts first: inside every fraction
    return y


def _trainers(data, tmp_path, kw):
    from ultralytics.models.yolo.detect import DetectionTrainer

    out = {}
    for name, cls in (("stock", DetectionTrainer), ("ours", FastDetectionTrainer)):
        t = cls(overrides=dict(model="yolo11n.yaml", data=str(data), imgsz=160, device="cpu", workers=0,
                               project=str(tmp_path), name=name, plots=False, **kw))
        t.model = t.get_model(cfg="yolo11n.yaml", verbose=False)
        out[name] = t
    return out


def _labels(ds) -> list:
    return [(str(lb["im_file"]).rsplit("/", 1)[-1], np.asarray(lb["cls"]).reshape(-1).tolist(),
             np.round(np.asarray(lb["bboxes"], np.float64), 5).tolist()) for lb in ds.labels]


@pytest.mark.parametrize("case", list(CASES))
def test_served_images_and_labels_equal_the_stock_trainers(sel_set, tmp_path, case):
    t = _trainers(sel_set, tmp_path, CASES[case])
    for mode, split in (("train", "train"), ("val", "val")):
        stock_ds = t["stock"].build_dataset(t["stock"].data[split], mode, 4)
        dl = t["ours"].get_dataloader(t["ours"].data[split], batch_size=4, mode=mode)
        try:
            ours, theirs = _labels(dl.dataset), _labels(stock_ds)
            if mode == "train":  # stock keeps the file order; ours too (the sampler shuffles, not the dataset)
                assert ours == theirs, (case, mode)
            else:  # val: both in aspect-ratio order for rect batches
                assert sorted(ours) == sorted(theirs), (case, mode)
            assert len(ours) > 0
        finally:
            dl.close()
    if "classes" in CASES[case]:
        kept = {c for _, cls, _ in ours for c in cls}
        assert kept <= ({0.0} if CASES[case].get("single_cls") else set(map(float, CASES[case]["classes"])))
        assert any(not cls for _, cls, _ in ours), "images left without labels stay, as backgrounds"


def test_fraction_count_follows_ultralytics():
    assert fraction_count(0.4, 22) == 9 and fraction_count(7, 22) == 7 and fraction_count(1.0, 22) == 22
    assert fraction_count(0.001, 22) == 1 and fraction_count(50, 22) == 22
    for bad in (0, -1, 0.0, 1.5, True, "half"):
        with pytest.raises(ValueError):
            fraction_count(bad, 22)


def test_select_labels_keeps_backgrounds_and_offsets(demo_set):
    ix = build_index(demo_set, verbose=False)
    sel = select_labels(ix, classes=[1])
    assert len(sel) == len(ix) and sel.label_offsets[-1] == len(sel.cls) == int((ix.cls == 1).sum())
    for i in range(len(ix)):
        c, b = ix.labels_of(i)
        c2, b2 = sel.labels_of(i)
        assert np.array_equal(c2, c[c == 1]) and np.array_equal(b2, b[c == 1])
    one = select_labels(ix, single_cls=True)
    assert (one.cls == 0).all() and np.array_equal(one.boxes, ix.boxes)


@pytest.mark.parametrize("case", ["fraction-ratio", "classes", "single_cls", "cutmix"])
def test_short_training_runs_with_each(sel_set, tmp_path, case):
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.train(data=str(sel_set), imgsz=64, epochs=1, batch=4, device="cpu", plots=False, project=str(tmp_path),
                name=case, trainer=FastDetectionTrainer, verbose=False, amp=False, workers=0, close_mosaic=0,
                **{**CASES, **TRAIN_ONLY}[case])
    dl = model.trainer.train_loader
    if "fraction" in {**CASES, **TRAIN_ONLY}[case]:
        assert len(dl.dataset) < 20
    if case == "cutmix":
        assert dl.loader.planner.hyp.cutmix == 0.5
    if {**CASES, **TRAIN_ONLY}[case].get("single_cls"):
        assert model.trainer.data["nc"] == 1
    tl = model.trainer.tloss  # a dict of losses in newer Ultralytics, a tensor in older ones
    losses = tl.values() if isinstance(tl, dict) else torch.as_tensor(tl).flatten()
    assert all(math.isfinite(float(v)) for v in losses)
