"""cache="ram" / cache="disk" through the loader: bitwise the batches of cache=False, reused across runs, one
image decoded again per changed source, and every fault of the store a warning, a count and the uncached path."""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path

import cv2
import pytest
import torch

from loader import DetectionLoader, UnsupportedHyp

S = 256


def _run(data, cache, **kw):
    with DetectionLoader(data, imgsz=S, batch_size=6, workers=2, seed=5, cache=cache, index_cache=False, **kw) as dl:
        batches = [{k: (v.clone() if torch.is_tensor(v) else v) for k, v in b.items()} for b in dl]
        return batches, dl.stats()


def _same(a, b):
    return len(a) == len(b) > 0 and all(torch.equal(x["img"], y["img"]) and torch.equal(x["bboxes"], y["bboxes"])
                                        and x["im_file"] == y["im_file"] for x, y in zip(a, b))


@pytest.mark.parametrize("cache", ["disk", "ram"])
def test_cached_batches_are_bitwise_reused_and_invalidated_per_file(demo_set, copy_of, tmp_path, cache):
    data = copy_of(demo_set)
    plain, _ = _run(data, False)
    first, st = _run(data, cache, cache_dir=tmp_path / "c")
    assert _same(plain, first), f"cache={cache!r} gives bitwise the batches of cache=False"
    assert st["store"]["built_here"] and st["store"]["decoded"] == 24 and st["decodes"] == 0
    assert st["store"]["backing"] == {"disk": "file", "ram": "shm"}[cache]
    if cache == "ram":
        assert not Path(st["store"]["path"]).exists(), "the last user removed the shared store"
        return
    assert Path(st["store"]["path"]).parent == tmp_path / "c", "cache_dir says where the disk cache goes"
    second, st = _run(data, cache, cache_dir=tmp_path / "c")
    assert _same(plain, second) and not st["store"]["built_here"], "second run: nothing decoded"
    src = Path(data).parent / "images" / "train" / "000007.jpg"  # a changed source decodes alone
    cv2.imwrite(str(src), 255 - cv2.imread(str(src)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    third, st = _run(data, cache, cache_dir=tmp_path / "c")
    assert st["store"]["decoded"] == 1 and st["store"]["copied"] == 23
    fresh, _ = _run(data, False)
    assert _same(fresh, third) and not _same(plain, third)
    assert not [p for p in Path(data).parent.rglob("*") if p.suffix in (".npy", ".pack")], "nothing in the data set"


def test_disk_cache_location_from_the_environment(demo_set, tmp_path, monkeypatch):
    monkeypatch.setenv("YOLO_LOADER_DISK_CACHE_DIR", str(tmp_path / "ssd"))
    _, st = _run(demo_set, "disk")
    assert Path(st["store"]["path"]).parent == tmp_path / "ssd"


def test_a_store_that_cannot_be_built_degrades_to_decoding(demo_set, tmp_path, caplog):
    """No space (RLIMIT_FSIZE: the reservation fails with EFBIG, as a full disk or a small /dev/shm would): one
    WARNING naming the cause, counted, no partial file, and the batches of cache=False."""
    plain, _ = _run(demo_set, False)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with caplog.at_level(logging.WARNING, logger="loader"):
            degraded, st = _run(demo_set, "disk", cache_dir=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert _same(plain, degraded) and st["store_errors"] == 1 and st["store"]["backing"] is None
    assert st["decodes"] > 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "cache=" in r.getMessage()]
    assert len(warnings) == 1 and "File too large" in warnings[0] and "decoding from the image files" in warnings[0]
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".pack" or ".tmp." in p.name]


def test_too_many_open_files_is_not_bad_data(demo_set, caplog):
    """A read that fails for the machine's reason (EMFILE here, for real) replaces the sample this time, is counted,
    and the image stays in the data set: served as soon as descriptors are free again."""
    from loader.dataset import build_index
    from loader.images import ImageSource, UnreadableImage
    from loader.plan import Planner

    index = build_index(demo_set, verbose=False)
    src = ImageSource(index, Planner(index, 160, augment=False).load_shapes, imgsz=160, budget_bytes=10 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no descriptor left to open
    try:
        with caplog.at_level(logging.WARNING, logger="loader"), pytest.raises(UnreadableImage) as e:
            src.get(3)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not e.value.permanent and src.read_faults == 1 and not src.is_unreadable(3) and not src.unreadable
    assert any("Too many open files" in r.getMessage() for r in caplog.records)
    assert src.get(3).shape == (90, 160, 3)
    src.close()


def test_unknown_cache_value_is_refused(demo_set):
    with pytest.raises(UnsupportedHyp, match="cache='memory'"):
        DetectionLoader(demo_set, cache="memory")
