"""Index parity with Ultralytics 8.4: same kept images, same labels, same rejected files.

Ultralytics runs on a copy of each set: it may rewrite JPEGs it considers corrupt.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from loader.dataset import build_index

import ultralytics  # noqa: F401,E402  (a dependency: missing fails, never skips)


def _ultralytics_index(data_yaml: Path, split: str = "train"):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import LOGGER

    import logging

    messages = []
    h = logging.Handler()
    h.emit = lambda r: messages.append(r.getMessage())
    LOGGER.addHandler(h)
    try:
        data = check_det_dataset(str(data_yaml))
        ds = YOLODataset(img_path=data[split], data=data, task="detect", augment=False, imgsz=640, hyp=get_cfg())
    finally:
        LOGGER.removeHandler(h)
    rejected = set()
    for m in "\n".join(messages).splitlines():
        hit = re.match(r"(?:\S*\s)?(/\S+): ignoring corrupt image/label", m)
        if hit:
            rejected.add(Path(hit.group(1)).name)
    return ds.labels, rejected


def _compare(ours_yaml: Path, theirs_yaml: Path, split: str = "train"):
    ix = build_index(ours_yaml, split, cache=False, verbose=False)
    labels, rejected = _ultralytics_index(theirs_yaml, split)
    ours_names = [Path(p).name for p in ix.im_files]
    theirs_names = [Path(lb["im_file"]).name for lb in labels]
    assert ours_names == theirs_names, "same kept images, same order"
    for k, lb in enumerate(labels):
        cls, boxes = ix.labels_of(k)
        assert np.array_equal(cls, lb["cls"].reshape(-1)), ours_names[k]
        assert np.allclose(boxes, lb["bboxes"], atol=1e-6, rtol=0), ours_names[k]
        assert tuple(ix.shapes[k]) == tuple(lb["shape"]), ours_names[k]
    assert {Path(s.path).name for s in ix.skipped} == rejected, "same rejected files"
    return ix, labels


def test_parity_on_demo_set(demo_set, copy_of):
    ix, labels = _compare(demo_set, copy_of(demo_set))
    assert len(ix) == len(labels) == 24
    _compare(demo_set, copy_of(demo_set), "val")


def test_parity_on_nasty_set(nasty_set, copy_of):
    ix, labels = _compare(nasty_set, copy_of(nasty_set))
    assert len(ix.skipped) == 10 and len(labels) == len(ix)
