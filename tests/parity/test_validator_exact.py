"""Exact validation: our val loader hands the validator bitwise the stock validator's images, so the metrics are
the same numbers.

The stock side is Ultralytics' own ``DetectionValidator.get_dataloader`` (``build_yolo_dataset`` in mode
"val" + ``build_dataloader``); ours is ``FastDetectionValidator.get_dataloader`` (and the trainer's val loader,
built the same way). Checked on the demo set at two sizes (a 6x and a 3x reduction: the DCT-reduced decode
once moved these pixels by up to 4.9 grey levels) and on awkward files (PNG, grayscale, CMYK, EXIF-rotated
JPEGs, backgrounds).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml

import ultralytics  # noqa: F401,E402  (a dependency: missing fails, never skips)

from integration.ultralytics import FastDetectionValidator  # noqa: E402


@pytest.fixture(scope="module")
def awkward_set(nasty_set, tmp_path_factory):
    """A copy of the nasty set validated on its train list (every awkward file Ultralytics keeps)."""
    dst = tmp_path_factory.mktemp("awkward") / "set"
    shutil.copytree(nasty_set.parent, dst)
    cfg = yaml.safe_load((dst / nasty_set.name).read_text())
    cfg["val"] = cfg["train"]
    (dst / "awkward.yaml").write_text(yaml.safe_dump(cfg))
    return dst / "awkward.yaml"


def _validator(cls, data_yaml, imgsz: int, batch: int, save_dir, rect: bool = True):
    from ultralytics.data.utils import check_det_dataset

    # rect=True: YOLO(...).val()'s default (its rect batches); rect=False: square letterboxes
    v = cls(args=dict(data=str(data_yaml), imgsz=imgsz, batch=batch, workers=0, device="cpu", plots=False, rect=rect),
            save_dir=save_dir)
    v.data = check_det_dataset(str(data_yaml))
    v.stride, v.device, v.names = 32, torch.device("cpu"), v.data["names"]
    return v


def _val_batches(cls, data_yaml, imgsz: int, batch: int, save_dir, rect: bool = True) -> list[dict]:
    v = _validator(cls, data_yaml, imgsz, batch, save_dir, rect)
    dl = v.get_dataloader(v.data["val"], batch)
    try:
        return [{k: (x.clone() if torch.is_tensor(x) else x) for k, x in b.items()} for b in dl]
    finally:
        if hasattr(dl, "close"):
            dl.close()


def _compare(stock: list[dict], ours: list[dict]) -> int:
    """Every image bitwise equal, every field the metric reads equal; returns the number of images."""
    assert len(ours) == len(stock) > 0
    n = 0
    for o, s in zip(ours, stock, strict=True):
        assert o["im_file"] == tuple(s["im_file"])
        assert o["ori_shape"] == tuple(tuple(int(v) for v in x) for x in s["ori_shape"])
        assert o["ratio_pad"] == tuple(((float(a), float(b)), (int(c), int(d))) for (a, b), (c, d) in s["ratio_pad"])
        assert torch.equal(o["batch_idx"], s["batch_idx"]) and torch.equal(o["cls"], s["cls"])
        assert torch.allclose(o["bboxes"], s["bboxes"], atol=1e-6)
        assert o["img"].shape == s["img"].shape and o["img"].dtype == s["img"].dtype
        for k, f in enumerate(o["im_file"]):
            diff = (o["img"][k].int() - s["img"][k].int()).abs()
            assert int(diff.max()) == 0, f"{f}: {int((diff > 0).sum())} pixels differ, by up to {int(diff.max())}"
            n += 1
    return n


@pytest.mark.parametrize("imgsz,rect", [(320, True), (640, True), (320, False)])
def test_val_images_are_bitwise_the_stock_validators(demo_set, copy_of, tmp_path, imgsz, rect):
    from ultralytics.models.yolo.detect import DetectionValidator

    data = copy_of(demo_set)
    stock = _val_batches(DetectionValidator, data, imgsz, 4, tmp_path / "stock", rect)
    ours = _val_batches(FastDetectionValidator, data, imgsz, 4, tmp_path / "ours", rect)
    assert _compare(stock, ours) == 6


def test_awkward_val_images_are_bitwise_the_stock_validators(awkward_set, tmp_path):
    from ultralytics.models.yolo.detect import DetectionValidator

    stock = _val_batches(DetectionValidator, awkward_set, 320, 8, tmp_path / "stock")  # may rewrite a bad JPEG:
    ours = _val_batches(FastDetectionValidator, awkward_set, 320, 8, tmp_path / "ours")  # then both read it so
    names = {f.rsplit("/", 1)[-1] for b in ours for f in b["im_file"]}
    assert {"nasty_png.png", "nasty_gray.jpg", "nasty_cmyk.jpg", "nasty_exif6.jpg", "nasty_exif3.jpg",
            "nasty_nolabel.jpg"} <= names
    assert _compare(stock, ours) == len(names) >= 12


@pytest.mark.parametrize("imgsz,extra", [(320, {}), (256, {}), (320, {"classes": [1]}), (320, {"single_cls": True})])
def test_the_trainers_val_loader_is_bitwise_the_stock_trainers(demo_set, copy_of, tmp_path, imgsz, extra):
    """``trainer.get_dataloader(mode="val")`` is built apart from ``FastDetectionValidator`` (the loader that
    validates every epoch): the same bitwise comparison against the stock ``DetectionTrainer``'s."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from integration.ultralytics import FastDetectionTrainer

    data = copy_of(demo_set)
    batches = {}
    for name, cls in (("stock", DetectionTrainer), ("ours", FastDetectionTrainer)):
        t = cls(overrides=dict(model="yolo11n.yaml", data=str(data), imgsz=imgsz, device="cpu", workers=0,
                               project=str(tmp_path), name=name, plots=False, **extra))
        t.model = t.get_model(cfg="yolo11n.yaml", verbose=False)  # its stride sets the rect batches' multiple
        dl = t.get_dataloader(t.data["val"], batch_size=4, mode="val")
        try:
            batches[name] = [{k: (x.clone() if torch.is_tensor(x) else x) for k, x in b.items()} for b in dl]
        finally:
            if hasattr(dl, "close"):
                dl.close()
    assert _compare(batches["stock"], batches["ours"]) == 6


def test_letterbox_that_scales_down_is_ultralytics_resize(tmp_path):
    """A val plan whose letterbox shrinks the load-size image (a batch shape smaller than it) is resized with
    cv2.resize INTER_LINEAR, as LetterBox does, not warped: bitwise Ultralytics' LetterBox output."""
    import cv2
    from ultralytics.data.augment import LetterBox

    from loader.kernels.opencv import paint
    from loader.plan import Planner

    class _Index:  # what val planning reads: one 500x300 image without boxes
        shapes = np.array([[300, 500]], np.int32)
        label_offsets = np.zeros(2, np.int64)
        cls, boxes = np.zeros(0, np.float32), np.zeros((0, 4), np.float32)

        def __len__(self):
            return 1

    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8), (5, 5), 1.5)
    planner = Planner(_Index(), imgsz=500, augment=False)
    plan = planner.val_plan(0, (224, 320))  # 500x300 -> 320x192, padded to 320x224
    out = np.empty((224, 320, 3), np.uint8)
    paint(plan, lambda i: img, out)
    ref = LetterBox(new_shape=(224, 320), scaleup=False)(image=img.copy())
    assert plan.letterbox == (192, 320, 16, 0)
    assert np.array_equal(out, ref[..., ::-1])


def test_same_metrics_as_the_stock_validator_on_trained_weights(trained_detector):
    """The stock validator and ours score the same trained weights: equal mAP50 and mAP50-95 (to 1e-4) on a
    model that has learned (mAP50 well above 0)."""
    from ultralytics import YOLO

    weights, data = trained_detector
    kw = dict(data=str(data), imgsz=128, batch=8, device="cpu", plots=False, verbose=False)
    stock = YOLO(str(weights)).val(**kw)
    ours = YOLO(str(weights)).val(validator=FastDetectionValidator, **kw)
    print(f"stock mAP50 {stock.box.map50:.4f} mAP50-95 {stock.box.map:.4f}; ours {ours.box.map50:.4f} "
          f"{ours.box.map:.4f}")
    assert stock.box.map50 > 0.2, "the fixture's model must have learned for this comparison to mean anything"
    assert abs(ours.box.map50 - stock.box.map50) <= 1e-4 and abs(ours.box.map - stock.box.map) <= 1e-4
    assert np.allclose(ours.box.maps, stock.box.maps, atol=1e-4)
