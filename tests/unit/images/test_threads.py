"""Painter threads share one image source: 8 threads, every store, 24,000 reads each, every image bitwise the
single-threaded decode, nothing raised. (Before the packed store, disk-cache reads went through ``np.load``,
whose ``ast`` header parsing races on Python 3.11.7: "SystemError: AST constructor recursion depth mismatch".)

Repeat it as the scale review asked: ``for i in $(seq 10); do .venv/bin/python -m pytest -q
tests/unit/images/test_threads.py || break; done``."""

from __future__ import annotations

import os
import threading
import zlib

import cv2
import numpy as np
import pytest

from loader.dataset import build_index
from loader.images import ImageSource
from loader.plan import Planner

THREADS, READS = 8, 3000  # per thread: 24,000 reads per store


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("threads") / "images"
    d.mkdir()
    rng = np.random.default_rng(3)
    for k in range(300):
        h, w = int(rng.integers(24, 72)), int(rng.integers(24, 72))
        cv2.imwrite(str(d / f"{k:04d}.jpg"), rng.integers(0, 255, (h, w, 3), np.uint8))
    return build_index(str(d), cache=False, verbose=False)


@pytest.mark.parametrize("store", [None, "ram", "disk", "memfd"])
def test_eight_threads_read_every_store_consistently(small_set, tmp_path, monkeypatch, store):
    monkeypatch.setenv("YOLO_LOADER_SHM_DIR", str(tmp_path / "shm"))
    (tmp_path / "shm").mkdir()
    if store == "memfd":  # cache="ram" with a /dev/shm too small: the private copy
        real, shm = os.statvfs, str(tmp_path / "shm")
        monkeypatch.setattr(os, "statvfs", lambda p: os.statvfs_result((4096,) * 2 + (0,) * 8) if str(p) == shm
                            else real(p))
    index = small_set
    shapes = Planner(index, 64, augment=False).load_shapes
    with ImageSource(index, shapes, imgsz=64, budget_bytes=20 * 64 * 64 * 3) as ref:
        want = [zlib.crc32(ref.decode(i)) for i in range(len(index))]
    # a small buffer: the uncached store evicts and decodes all the time, threads meet on the same images
    src = ImageSource(index, shapes, imgsz=64, budget_bytes=20 * 64 * 64 * 3, store="ram" if store == "memfd" else store,
                      workers=2, cache_dir=tmp_path / "disk", key="threads")
    assert src.store_errors == (1 if store == "memfd" else 0)
    errors, bad = [], []
    start = threading.Barrier(THREADS)

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        start.wait()
        try:
            for i in rng.integers(0, len(index), READS).tolist():
                if zlib.crc32(src.get(i)) != want[i]:
                    bad.append(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backing = src.store.backing if src.store else None
    src.close()
    assert not errors and not bad, (errors[:3], bad[:10])
    assert backing == {None: None, "ram": "shm", "disk": "file", "memfd": "memfd"}[store]
