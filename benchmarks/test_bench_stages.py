"""Per-stage micro-benchmarks: a regression points at its stage (decode, plan, paint, HSV, batch)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import BATCH, IMGSZ


@pytest.fixture(scope="module")
def loader(bench_data):
    from loader import DetectionLoader

    dl = DetectionLoader(bench_data, imgsz=IMGSZ, batch_size=BATCH, workers=1)
    yield dl
    dl.close()


@pytest.fixture(scope="module")
def plans(loader):
    return loader.planner.plan_batch(0, np.arange(32), loader.sampler.indices())


def test_decode_dct_reduced(benchmark, loader):
    from loader.images import decode_resized, read_bytes

    ix = loader.index
    blobs = [read_bytes(ix.im_files[i]) for i in range(8)]

    def run():
        for i, b in enumerate(blobs):
            decode_resized(b, tuple(ix.shapes[i]), loader.images.load_hw(i), True, reduce=True)

    benchmark(run)
    benchmark.extra_info["per"] = "8 images"


def test_plan_batch(benchmark, loader):
    """The batch planner: one batch of mosaics (issue 13's budget: 5 ms for 128 at 896 px)."""
    order = loader.sampler.indices()
    positions = np.arange(BATCH) % len(order)
    benchmark(lambda: loader.planner.plan_batch(0, positions, order))
    benchmark.extra_info["per"] = f"a batch of {BATCH}"


def test_paint_geometry(benchmark, loader, plans):
    from loader.kernels import opencv

    out = np.empty((IMGSZ, IMGSZ, 3), np.uint8)
    load = loader.images.get
    plans = plans.plans()
    for p in plans:  # decode once: this times the painting, not the decoder
        opencv.paint(p, load, out)
    benchmark(lambda: [opencv.paint_geometry(p, load, out) for p in plans[:8]])
    benchmark.extra_info["per"] = "8 samples, images cached"


def test_hsv(benchmark):
    from loader.kernels.opencv import apply_hsv

    img = np.random.default_rng(0).integers(0, 255, (IMGSZ, IMGSZ, 3), np.uint8)
    r = np.array([0.01, 0.3, -0.2])
    benchmark(lambda: apply_hsv(img, r, True))


def test_batch_assembly(benchmark, plans, loader):
    from loader.batch import assemble

    img = np.empty((len(plans), IMGSZ, IMGSZ, 3), np.uint8)
    benchmark(lambda: assemble(plans, img, loader.index.im_files))
