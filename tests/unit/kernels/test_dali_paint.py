"""The DALI graph kernel against OpenCV on the same plans, per device (CPU-only mode here; the GPU cases skip
without CUDA), as DALI's own operator tests check each operator against a reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import nvidia.dali  # noqa: F401,E402  (a dependency: missing fails, never skips)

DEVICES = ["cpu", pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU")])]


def _single_tile_plan(img, M=None, hsv=None):
    from loader.plan import Plan, Tile

    h, w = img.shape[:2]
    return Plan(index=0, out_hw=(h, w), canvas_hw=(h, w), tiles=[Tile(0, (h, w), (0, 0, w, h), (0, 0))],
                M=np.eye(3) if M is None else M, hsv=hsv)


@pytest.mark.parametrize("device,out_kind", [("cpu", "numpy"), ("cpu", "tensor"),
                                             pytest.param("gpu", "tensor", marks=DEVICES[1].marks)])
def test_dali_painter_colour_matches_opencv_on_every_kind_of_colour(device, out_kind):
    """HSV jitter, channel order and mixup after the graph: OpenCV on numpy output; torch ops (the GPU path,
    here also run on the CPU) on tensor output, matching OpenCV but for rare float edge cases."""
    from loader.kernels.dali_paint import DaliPainter, PainterConfig
    from loader.kernels.opencv import apply_hsv

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (256, 512, 3), np.uint8)
    img[0, :256] = np.arange(256)[:, None]  # greys
    img[1, :256, 1] = np.arange(256)
    gains = [np.zeros(3), *(rng.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] for _ in range(3)), np.array([0.5, 1, -1]),
             None]
    plans = [_single_tile_plan(img, hsv=g) for g in gains]
    plans[-1] = replace(plans[-1], keep_bgr=True)
    partner = _single_tile_plan(img[::-1].copy())
    partner = replace(partner, tiles=[replace(partner.tiles[0], index=1)])
    plans.append(replace(_single_tile_plan(img, hsv=gains[1]), mix=partner, mix_r=0.37))
    images = {0: img, 1: img[::-1].copy()}
    out = np.zeros((len(plans), *img.shape), np.uint8)
    if out_kind == "tensor":
        out = torch.zeros(out.shape, dtype=torch.uint8, device="cuda" if device == "gpu" else "cpu")
    with DaliPainter(PainterConfig(1, True, len(plans), device)) as painter:
        painter.paint(plans, images.__getitem__, out)
    out = out.cpu().numpy() if torch.is_tensor(out) else out
    for p, got in zip(plans, out, strict=True):
        ref = img.copy()
        if p.mix is not None:
            ref = (ref * p.mix_r + images[1] * (1 - p.mix_r)).astype(np.uint8)
        apply_hsv(ref, p.hsv, to_rgb=not p.keep_bgr)
        d = np.abs(got.astype(int) - ref)
        # float32 HSV->RGB: a pixel at a sector edge may land one hue step away (1e-4 of pixels, 2 levels)
        assert d.max() <= 2 and (d > 0).mean() < 1e-2, (p.hsv, d.max(), (d > 0).mean())


@pytest.mark.parametrize("device", DEVICES)
def test_dali_warp_is_opencvs_affine(device):
    """Pixel-centre convention: a tile warped in the graph equals cv2.warpAffine with a 114 border."""
    import cv2

    from loader.kernels.dali_paint import DaliPainter, PainterConfig

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), np.uint8), (7, 7), 2)
    th = np.deg2rad(17)
    M = np.array([[1.3 * np.cos(th), -1.3 * np.sin(th), 20.4], [1.3 * np.sin(th), 1.3 * np.cos(th), -15.7], [0, 0, 1]])
    plan = _single_tile_plan(img, M)
    with DaliPainter(PainterConfig(1, False, 1, device)) as painter:
        out = np.zeros((1, 120, 160, 3), np.uint8)
        painter.paint([plan], lambda i: img, out)
    ref = cv2.warpAffine(img.astype(np.float32), M[:2], (160, 120), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114))
    ref = np.rint(ref).astype(np.uint8)[..., ::-1]
    assert np.abs(out[0].astype(int) - ref).max() <= 1


def test_canvas_feeds_paste_grey_first_then_the_visible_crops():
    """One array per argument for the whole run, the same number of pastes in every sample (size 0 where a tile
    is not visible), a 1x1 grey canvas where nothing is visible, 1x1 samples past the canvases."""
    from loader.kernels.dali_paint import canvas_feeds
    from loader.plan import PlanBatch, Tile

    img = np.zeros((8, 8, 3), np.uint8)
    plan = _single_tile_plan(img)
    plan = replace(plan, tiles=plan.tiles + (Tile(1, (4, 4), (0, 0, 4, 4), (6, 6)),))  # partly outside the 8x8 canvas
    canvases = PlanBatch.from_plans([plan, replace(plan, tiles=())])
    f = canvas_feeds(canvases, 3, np.array([10, 11], np.int32), grey=99)
    assert all(isinstance(v, np.ndarray) and len(v) == 3 for v in f.values())
    assert f["ids"][0].tolist() == [99, 10, 11]
    assert f["shapes"][0].tolist() == [[8, 8], [8, 8], [2, 2]]  # the second tile: its visible 2x2 corner
    assert f["out_anchors"][0].tolist() == [[0, 0], [0, 0], [6, 6]]
    assert f["ids"][1, 0] == 99 and f["shapes"][1].tolist() == [[1, 1], [0, 0], [0, 0]]  # no tiles: 1x1 grey
    assert f["canvas"][1].tolist() == [1, 1] and f["size"][1].tolist() == [8, 8]
    assert f["shapes"][2].sum() == 0 and f["size"][2].tolist() == [1, 1]  # past the canvases: pastes nothing
    with pytest.raises(ValueError, match="perspective"):
        canvas_feeds(PlanBatch.from_plans([replace(plan, perspective=True)]), 1, np.array([0, 1]), grey=0)


def test_a_plan_that_sees_nothing_of_its_canvas_is_grey():
    from loader.kernels.dali_paint import DaliPainter, PainterConfig

    img = np.full((16, 16, 3), 7, np.uint8)
    far = np.array([[1, 0, 5000], [0, 1, 5000], [0, 0, 1]], np.float64)
    out = np.zeros((2, 16, 16, 3), np.uint8)
    with DaliPainter(PainterConfig(1, False, 2, "cpu")) as painter:
        painter.paint([_single_tile_plan(img, far), _single_tile_plan(img)], lambda i: img, out)
    assert (out[0] == 114).all() and (out[1] == 7).all()


def test_painter_refuses_batches_it_was_not_built_for():
    from loader.kernels.dali_paint import DaliPainter, PainterConfig

    img = np.zeros((8, 8, 3), np.uint8)
    with DaliPainter(PainterConfig(1, False, 2, "cpu")) as painter:
        with pytest.raises(ValueError, match="batch"):
            painter.feeds([_single_tile_plan(img)] * 3, lambda i: img)
        mixed = replace(_single_tile_plan(img), mix=_single_tile_plan(img))
        with pytest.raises(ValueError, match="mixup"):
            painter.feeds([mixed], lambda i: img)
        with pytest.raises(ValueError, match="output size"):
            painter.feeds([_single_tile_plan(img), _single_tile_plan(np.zeros((4, 8, 3), np.uint8))], lambda i: img)
