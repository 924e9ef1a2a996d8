"""cache="disk": bitwise the same batches, reused across runs, invalidated per file, manifest rebuilt."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import pytest
import torch

from loader import DetectionLoader, UnsupportedHyp

S = 256


def _run(data, cache):
    with DetectionLoader(data, imgsz=S, batch_size=6, workers=2, seed=5, cache=cache, index_cache=False) as dl:
        batches = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()} for b in dl]
        return batches, dl.images.disk


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x["img"], y["img"]) and torch.equal(x["bboxes"], y["bboxes"])
                                    and x["im_file"] == y["im_file"] for x, y in zip(a, b))


def test_disk_cache_bitwise_reused_invalidated_rebuilt(demo_set, copy_of, caplog):
    data = copy_of(demo_set)
    plain, _ = _run(data, False)
    first, disk = _run(data, "disk")
    assert _same(plain, first), "cache='disk' gives bitwise the batches of cache=False"
    assert disk.writes == 24 and (disk.dir / "manifest.json").exists()
    second, disk = _run(data, "disk")
    assert _same(plain, second) and disk.writes == 0 and disk.hits >= 24, "second run: no re-encoding"

    # a changed source file is re-encoded alone
    src = Path(data).parent / "images" / "train" / "000007.jpg"
    img = cv2.imread(str(src))
    cv2.imwrite(str(src), 255 - img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    third, disk = _run(data, "disk")
    assert disk.writes == 1
    fresh, _ = _run(data, False)
    assert _same(fresh, third) and not _same(plain, third)

    # a corrupt manifest is rebuilt, never trusted
    (disk.dir / "manifest.json").write_text("{ garbage")
    fourth, disk = _run(data, "disk")
    assert disk.writes == 24 and _same(fresh, fourth)
    assert any("manifest" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    assert not any(Path(data).parent.rglob("*.npy")), "nothing is written into the data set folder"


def test_unknown_cache_value_is_refused(demo_set):
    with pytest.raises(UnsupportedHyp, match="cache='memory'"):
        DetectionLoader(demo_set, cache="memory")
