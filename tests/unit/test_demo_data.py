"""The demo data generator: deterministic, realistic, exact labels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from loader.demo_data import CLASSES, make_demo_dataset, render_sample


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_count_grows_stably(tmp_path):
    a = make_demo_dataset(tmp_path / "a", count=5, val_count=2, size=(320, 180), seed=7, workers=1)
    b = make_demo_dataset(tmp_path / "b", count=5, val_count=2, size=(320, 180), seed=7, workers=2)
    assert _digest(a.parent) == _digest(b.parent)
    c = make_demo_dataset(tmp_path / "c", count=8, val_count=2, size=(320, 180), seed=7, workers=1)
    da, dc = _digest(a.parent), _digest(c.parent)
    assert all(dc[k] == v for k, v in da.items() if k.startswith(("images/train", "labels/train")))
    d = make_demo_dataset(tmp_path / "d", count=5, val_count=2, size=(320, 180), seed=8, workers=1)
    assert _digest(d.parent)["images/train/000000.jpg"] != da["images/train/000000.jpg"]


def test_boxes_enclose_the_object_pixels_exactly(demo_set):
    """Decoded JPEG pixels of each class colour lie inside, and fill out, that class's boxes."""
    root = Path(demo_set).parent
    checked = 0
    for k in range(8):
        img = cv2.imread(str(root / "images" / "train" / f"{k:06d}.jpg"))
        h, w = img.shape[:2]
        text = (root / "labels" / "train" / f"{k:06d}.txt").read_text()
        lb = np.array([r.split() for r in text.splitlines() if r.strip()], np.float64).reshape(-1, 5)
        for c, xc, yc, bw, bh in lb:
            x0, x1 = round((xc - bw / 2) * w), round((xc + bw / 2) * w)
            y0, y1 = round((yc - bh / 2) * h), round((yc + bh / 2) * h)
            colour = np.array(CLASSES[int(c)][2], np.int16)
            # the object's own colour, searched in a margin around its box
            m = 8
            crop = img[max(y0 - m, 0):y1 + m, max(x0 - m, 0):x1 + m].astype(np.int16)
            hit = np.abs(crop - colour).max(-1) < 40
            ys, xs = np.nonzero(hit)
            assert len(ys), (k, c)
            ox, oy = max(x0 - m, 0), max(y0 - m, 0)
            assert abs(xs.min() + ox - x0) <= 2 and abs(xs.max() + 1 + ox - x1) <= 2, (k, c)
            assert abs(ys.min() + oy - y0) <= 2 and abs(ys.max() + 1 + oy - y1) <= 2, (k, c)
            checked += 1
    assert checked >= 10


def test_render_sample_has_backgrounds_and_objects():
    counts = [len(render_sample(0, k, 320, 180)[1]) for k in range(60)]
    assert 0 in counts and max(counts) >= 5
    img, _ = render_sample(0, 1, 320, 180)
    assert img.shape == (180, 320, 3) and img.dtype == np.uint8 and img.std() > 20


def test_bad_arguments_refused(tmp_path):
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path, count=0)
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path, count=1, quality=101)
