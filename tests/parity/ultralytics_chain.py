"""Ultralytics 8.4's own detection transforms run with the parameters of one of our plans (the parity tests' side).

``ul_full(dataset, plan)``: ``Mosaic`` (or the single image), ``RandomPerspective`` with the plan's matrix,
``MixUp`` with its partner and ratio, ``CutMix`` with our draws fed to its ``np.random`` calls, ``RandomHSV`` with
gains that reproduce the plan's, both ``RandomFlip``s and ``Format``: Ultralytics' batch item for that plan.
"""

from __future__ import annotations

import numpy as np


def ul_dataset(data_yaml, imgsz: int, **hyp):
    """Ultralytics' training ``YOLODataset`` of a data.yaml (augment on, default hyp with ``hyp`` over it)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    return YOLODataset(img_path=data["train"], data=data, task="detect", augment=True, imgsz=imgsz,
                       hyp=get_cfg(overrides=hyp or None), batch_size=8)


def stock_boxes(data_yaml, imgsz: int, hyp: dict, batch: int, samples: int, seed: int):
    """Ultralytics' real training pipeline (``build_yolo_dataset``, ``ds[i]`` in index order, as an unshuffled
    epoch reads): (boxes per sample, (N, 4) normalized xywh boxes) over ``samples`` samples."""
    import random

    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    ds = build_yolo_dataset(get_cfg(overrides={"imgsz": imgsz, **hyp}), data["train"], batch, data, mode="train",
                            stride=32)
    random.seed(seed)
    np.random.seed(seed)
    counts, boxes = [], []
    for j in range(samples):
        out = ds[j % len(ds)]
        counts.append(len(out["cls"]))
        boxes.append(out["bboxes"].numpy().reshape(-1, 4))
    return counts, np.concatenate(boxes)


def ul_pre(ds, plan, flips):
    """Ultralytics' mosaic (or single image) + RandomPerspective with our plan's parameters."""
    from ultralytics.data.augment import Mosaic, RandomPerspective

    S = plan.out_hw[0]
    labels = [ds.get_image_and_label(t.index) for t in plan.tiles]
    if plan.mosaic:
        layout = []
        for t, lab in zip(plan.tiles, labels):
            x1b, y1b, x2b, y2b = t.crop
            x1a, y1a = t.at
            layout.append({"labels_patch": lab, "x1a": x1a, "y1a": y1a, "x2a": x1a + x2b - x1b,
                           "y2a": y1a + y2b - y1b, "x1b": x1b, "y1b": y1b, "x2b": x2b, "y2b": y2b,
                           "padw": x1a - x1b, "padh": y1a - y1b, "img_shape": t.hw})
        m = Mosaic(ds, imgsz=S)
        out = labels[0]
        out["mix_labels"] = labels[1:]
        out = m.apply_image(out, {"layout": layout})
        out = m.apply_instances(out, {"layout": layout})
        out.pop("mix_labels", None)
    else:
        out = labels[0]
    rp = RandomPerspective(size=(S, S), perspective=1e-9 if plan.perspective else 0.0)
    M = plan.M.astype(np.float64)
    F = np.eye(3)
    ud, lr = flips  # the top-level plan's flips, folded into every matrix
    if lr:
        F[0, 0], F[0, 2] = -1, S - 1
    if ud:
        F[1, 1], F[1, 2] = -1, S - 1
    M_pre = (F @ M).astype(np.float32)  # undo the folded flips: Ultralytics flips after HSV
    params = {"M": M_pre, "scale": plan.scale, "orig_shape": out["img"].shape[:2], "size": (S, S)}
    out = rp.apply_image(out, params)
    return rp.apply_instances(out, params)


def ul_full(ds, plan, cut_draws=None):
    from ultralytics.data.augment import Format, MixUp, RandomFlip, RandomHSV

    S = plan.out_hw[0]
    labels = ul_pre(ds, plan, plan.flips)
    if plan.mix is not None:
        labels["mix_labels"] = [ul_pre(ds, plan.mix, plan.flips)]
        mx = MixUp(ds, p=1.0)
        labels = mx.apply_instances(mx.apply_image(labels, {"r": plan.mix_r}), {"r": plan.mix_r})
        labels.pop("mix_labels")
    if plan.cut is not None:
        labels = ul_cutmix(ds, plan, labels, cut_draws)
    if plan.hsv is not None:
        hsv = RandomHSV(1.0, 1.0, 1.0)
        state = np.random.get_state()
        np.random.seed(0)
        draw = np.random.uniform(-1, 1, 3)
        np.random.seed(0)
        # RandomHSV draws r = uniform(-1, 1, 3) * gains; choose gains that reproduce our plan's r
        hsv.hgain, hsv.sgain, hsv.vgain = (plan.hsv / draw).tolist()
        hsv.apply_image(labels)
        np.random.set_state(state)
    for direction, on in (("vertical", plan.flips[0]), ("horizontal", plan.flips[1])):
        f = RandomFlip(p=1.0, direction=direction)
        params = {"flip": on, "h": S, "w": S, "direction": direction, "flip_idx": None}
        labels = f.apply_instances(f.apply_image(labels, params), params)
    fmt = Format(bbox_format="xywh", normalize=True, batch_idx=True, bgr=0.0)
    return fmt(labels)


def ul_cutmix(ds, plan, labels, draws):
    """Ultralytics' own ``CutMix`` on the primary (after mixup) with our plan's partner and our draws fed to its
    ``np.random`` calls in its order: per area ``beta`` (the Beta(1, 1) ratio), ``randint(w)``, ``randint(h)``,
    then ``choice`` among the free areas."""
    from ultralytics.data.augment import CutMix

    feed = iter([(name, draws[3 * k + j]) for k in range(3) for j, name in enumerate(("beta", "randint", "randint"))])

    def take(name):
        got, u = next(feed)
        assert got == name, (got, name)
        return u

    class Cut(CutMix):
        def get_indexes(self):
            return int(plan.cut.index)

    cm = Cut(ds, pre_transform=lambda data: ul_pre(ds, plan.cut, plan.flips), p=1.0)
    real = np.random.beta, np.random.randint, np.random.choice
    try:
        np.random.beta = lambda a, b: take("beta")
        np.random.randint = lambda n: int(take("randint") * n)
        np.random.choice = lambda idx: idx[int(draws[9] * len(idx))]
        params = cm.get_params(labels)
    finally:
        np.random.beta, np.random.randint, np.random.choice = real
    assert not params.get("skip"), "our plan pasted an area where Ultralytics' CutMix skips"
    labels = cm.apply_instances(cm.apply_image(labels, params), params)
    labels.pop("mix_labels", None)
    return labels
