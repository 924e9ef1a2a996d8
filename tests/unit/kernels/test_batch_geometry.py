"""``BatchGeometry``: the CPU engine's per-batch arrays paint every sample bitwise as ``paint(plan)`` does."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from loader.dataset import build_index
from loader.kernels import hsv, opencv
from loader.plan import Planner, load_size

S = 256
SETTINGS = {"default": {}, "no-mosaic": {"mosaic": 0.0}, "rotate-flips-bgr": {"degrees": 20, "flipud": 0.5, "bgr": 0.5},
            "no-hsv": {"hsv_h": 0, "hsv_s": 0, "hsv_v": 0}, "zoom-out-far": {"scale": 0.9, "translate": 0.45},
            "mixup-perspective": {"mixup": 0.5, "perspective": 0.0005}}


@pytest.fixture(params=["native", "opencv"])
def hsv_route(request, monkeypatch):
    """The HSV step's two routes: the kernel (on the box) and OpenCV's passes (over the box widened to whole
    vector blocks: it reads the pixels beside the box, which must still be 114 then)."""
    if request.param == "opencv":
        monkeypatch.setattr(hsv._setup, "value", {**hsv._setup(), "fn": None})
    return request.param


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_paint_sample_equals_paint(demo_set, setting, hsv_route):
    index = build_index(demo_set, verbose=False)
    images = {}

    def load(i):
        if i not in images:
            im = cv2.imread(index.im_files[i])
            h, w = load_size(*im.shape[:2], S)
            images[i] = cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
        return images[i]

    batch = Planner(index, S, SETTINGS[setting], batch_size=8, seed=3).plan_batch(
        0, np.arange(3 * len(index)) % len(index), np.arange(len(index)))
    geo = opencv.BatchGeometry(batch)
    simple = 0
    for j in range(len(batch)):
        if not geo.simple[j]:
            continue
        simple += 1
        ref, got = np.zeros((S, S, 3), np.uint8), np.ones((S, S, 3), np.uint8)
        opencv.paint(batch.plan(j), load, ref)
        geo.paint_sample(j, load, got)
        assert np.array_equal(ref, got), (setting, j)
    # mixup and perspective samples take paint(plan): the engine routes them there
    expected = (~batch.has_mix).sum() if not batch.perspective else 0
    assert simple == expected and (simple > 0 or setting == "mixup-perspective")
