"""``loader.plan.geometry`` against the Ultralytics 8.4 functions it mirrors, on the same numbers: equal to the
bit where the math is the same (matrices, layouts, letterbox, rect shapes), to float32 rounding otherwise."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from loader.plan import geometry as g

import ultralytics  # noqa: F401,E402  (a dependency: missing fails, never skips)


@pytest.mark.parametrize("hyp", [dict(degrees=0.0, translate=0.1, scale=0.5, shear=0.0, perspective=0.0),
                                 dict(degrees=30.0, translate=0.2, scale=(0.3, 1.7), shear=8.0, perspective=0.0008)])
def test_affine_matrix_is_random_perspectives(hyp):
    """The same drawn parameters give bitwise Ultralytics' ``T @ S @ R @ P @ C``."""
    from ultralytics.data.augment import RandomPerspective

    rp = RandomPerspective(**hyp)
    img = np.zeros((713, 1289, 3), np.uint8)
    lo, hi = hyp["scale"] if isinstance(hyp["scale"], tuple) else (1 - hyp["scale"], 1 + hyp["scale"])
    for seed in range(20):
        random.seed(seed)
        M_ul, s_ul = rp._compute_affine_matrix(img, (640, 640))
        random.seed(seed)  # the same draws, in Ultralytics' order, handed to our pure function
        u = random.uniform
        p, t, d = hyp["perspective"], hyp["translate"], hyp["degrees"]
        persp = (u(-p, p), u(-p, p))
        deg, s = u(-d, d), u(lo, hi)
        shear = (u(-hyp["shear"], hyp["shear"]), u(-hyp["shear"], hyp["shear"]))
        tr = (u(0.5 - t, 0.5 + t), u(0.5 - t, 0.5 + t))
        M = g.affine_matrix((1289, 713), (640, 640), persp, deg, s, shear, tr)
        assert M.dtype == M_ul.dtype == np.float32 and np.array_equal(M, M_ul) and s == s_ul


@pytest.mark.parametrize("perspective", [0.0, 0.0008])
def test_box_transform_and_candidates_are_random_perspectives(perspective):
    from ultralytics.data.augment import RandomPerspective

    rng = np.random.default_rng(0)
    rp = RandomPerspective(degrees=20, shear=5, perspective=perspective)
    xy = rng.uniform(0, 1000, (50, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + rng.uniform(1, 300, (50, 2)).astype(np.float32)], 1)
    random.seed(3)
    M, s = rp._compute_affine_matrix(np.zeros((1000, 1000, 3), np.uint8), (640, 640))
    new = g.transform_boxes(boxes, M, bool(perspective))
    assert np.array_equal(new, rp.apply_bboxes(boxes, M))
    clipped = g.clip_boxes(new, 640, 640)
    keep = g.box_candidates((boxes * np.float32(s)).T, clipped.T)
    assert np.array_equal(keep, rp.box_candidates(box1=(boxes * np.float32(s)).T, box2=clipped.T))
    assert 0 < keep.sum() < len(keep), "the sample exercises both outcomes"


def test_box_formats_are_ultralytics_ops():
    from ultralytics.utils import ops

    b = np.random.default_rng(1).uniform(0, 1, (40, 4)).astype(np.float32)
    assert np.array_equal(g.xywh2xyxy(b), ops.xywh2xyxy(b))
    assert np.array_equal(g.xyxy2xywh(b), ops.xyxy2xywh(b))


def test_mosaic_layout_is_mosaics():
    """Tile placement of the 2x2 mosaic, for random centres and tile sizes, equals ``Mosaic.get_params``."""
    from ultralytics.data.augment import Mosaic

    s = 320
    rng = np.random.default_rng(2)
    for seed in range(30):
        shapes = [(int(rng.integers(40, s + 1)), int(rng.integers(40, s + 1))) for _ in range(4)]
        mix = [{"img": np.zeros((*hw, 3), np.uint8), "resized_shape": hw} for hw in shapes[1:]]
        ds = SimpleNamespace(cache=False, buffer=[0, 1, 2], get_image_and_label=lambda i, mix=mix: mix[i])
        m = Mosaic(dataset=ds, imgsz=s)
        random.seed(seed)
        layout = m.get_params({"img": np.zeros((*shapes[0], 3), np.uint8), "resized_shape": shapes[0]})["layout"]
        random.seed(seed)  # replay: the partners drawn first, then the centre
        partners = random.choices([0, 1, 2], k=3)
        yc, xc = (int(random.uniform(-x, 2 * s + x)) for x in m.border)
        tiles = [shapes[0]] + [shapes[1 + i] for i in partners]
        for (a, b), ref in zip(g.mosaic_layout(s, xc, yc, tiles), layout, strict=True):
            assert a == tuple(ref[k] for k in ("x1a", "y1a", "x2a", "y2a"))
            assert b == tuple(ref[k] for k in ("x1b", "y1b", "x2b", "y2b"))


@pytest.mark.parametrize("shape,new", [((180, 320), (224, 352)), ((720, 1280), (640, 640)), ((300, 500), (224, 320)),
                                       ((481, 333), (512, 384)), ((1, 900), (32, 640))])
def test_letterbox_params_are_letterboxs(shape, new):
    from ultralytics.data.augment import LetterBox

    p = LetterBox(new_shape=new, scaleup=False).get_params({"img": np.zeros((*shape, 3), np.uint8)})
    r, unpad, top, bottom, left, right = g.letterbox_params(shape, new, scaleup=False)
    assert (r, r) == p["ratio"] and unpad == p["new_unpad"]
    assert (top, bottom, left, right) == tuple(p[k] for k in ("top", "bottom", "left", "right"))


def test_rect_batch_shapes_are_set_rectangles():
    from ultralytics.data.base import BaseDataset

    rng = np.random.default_rng(4)
    shapes = np.stack([rng.integers(100, 2000, 37), rng.integers(100, 2000, 37)], 1)
    ds = SimpleNamespace(ni=37, batch_size=8, imgsz=640, stride=32, pad=0.5, im_files=list(range(37)),
                         labels=[{"shape": tuple(s)} for s in shapes])
    BaseDataset.set_rectangle(ds)
    irect, bi, batch_shapes = g.rect_batch_shapes(shapes, 8, 640, 32, 0.5)
    assert np.array_equal(batch_shapes, ds.batch_shapes) and np.array_equal(bi, ds.batch)
    assert list(irect) == ds.im_files
