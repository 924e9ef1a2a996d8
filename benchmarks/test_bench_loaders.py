"""Whole loaders: a fixed number of batches per round; images/s and PSS in extra_info."""

from __future__ import annotations

import pytest

from .conftest import BATCH, IMGSZ, pss_bytes

N_BATCHES = 4


def _consume(it, n):
    images = 0
    for _ in range(n):
        images += len(next(it)["im_file"])
    return images


def _bench(benchmark, it, label):
    next(it)  # warm: first batch includes start-up
    images = benchmark.pedantic(_consume, args=(it, N_BATCHES), rounds=3, iterations=1)
    benchmark.extra_info.update(loader=label, imgsz=IMGSZ, batch=BATCH, images_per_round=images,
                                img_s=images / benchmark.stats.stats.median, pss_gib=pss_bytes() / 2**30)


def _endless(loader):
    while True:
        yield from loader


def test_cpu_engine(benchmark, bench_data):
    from loader import DetectionLoader

    with DetectionLoader(bench_data, imgsz=IMGSZ, batch_size=BATCH) as dl:
        _bench(benchmark, _endless(dl), f"cpu-w{dl.num_workers}")


def test_stock_ultralytics(benchmark, bench_data):
    pytest.importorskip("ultralytics")
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(bench_data))
    cfg = get_cfg(overrides={"imgsz": IMGSZ})
    ds = build_yolo_dataset(cfg, data["train"], BATCH, data, mode="train")
    dl = build_dataloader(ds, BATCH, 8, shuffle=True, rank=-1, device="cpu")
    _bench(benchmark, _endless(dl), f"stock-w{dl.num_workers}")
