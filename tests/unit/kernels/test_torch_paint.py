"""The torch painter (GPU composition step of the DALI engine), pinned to the OpenCV painter on CPU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from loader import DetectionLoader
from loader.kernels.opencv import paint
from loader.kernels.torch_paint import bgr_to_hsv8, hsv8_to_rgb, paint_torch

S = 320


def test_bgr_to_hsv_is_bit_exact_with_opencv():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (500, 2000, 3), np.uint8)
    px[0, :256] = np.arange(256)[:, None]  # greys: diff = 0, and v = 0
    px[1, :256, 0] = np.arange(256)
    assert np.array_equal(bgr_to_hsv8(torch.from_numpy(px)).numpy(), cv2.cvtColor(px, cv2.COLOR_BGR2HSV))


def test_hsv_to_rgb_within_one_level_of_opencv():
    rng = np.random.default_rng(1)
    hsv = cv2.cvtColor(rng.integers(0, 256, (500, 2000, 3), np.uint8), cv2.COLOR_BGR2HSV)
    d = np.abs(hsv8_to_rgb(torch.from_numpy(hsv)).numpy().astype(int) - cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    # OpenCV's vector path truncates (rounding would miss a third); float op order leaves a few 1e-3
    assert d.max() <= 1 and (d > 0).mean() < 5e-3


@pytest.mark.parametrize("hyp", [None, {"degrees": 20.0, "shear": 5.0, "perspective": 0.0005, "mixup": 0.5,
                                        "flipud": 0.5, "bgr": 0.5}])
def test_same_plans_as_the_opencv_painter(demo_set, hyp):
    with DetectionLoader(demo_set, imgsz=S, batch_size=8, workers=1, hyp=hyp) as dl:
        order = dl.sampler.indices()
        mads = []
        for pos in range(16):
            plan = dl.planner.train_plan(0, pos, order)
            ref = np.empty((S, S, 3), np.uint8)
            paint(plan, dl.images.get, ref)
            got = paint_torch(plan, dl.images.get).numpy()
            mads.append(np.abs(ref.astype(int) - got).mean())
    print("per-image MAD torch vs OpenCV painter: max", round(max(mads), 3))
    assert max(mads) <= 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(demo_set):
    with DetectionLoader(demo_set, imgsz=S, batch_size=8, workers=1) as dl:
        plan = dl.planner.train_plan(0, 3, dl.sampler.indices())
        a = paint_torch(plan, dl.images.get, "cpu")
        b = paint_torch(plan, dl.images.get, "cuda").cpu()
    assert (a.int() - b.int()).abs().float().mean() <= 0.5
