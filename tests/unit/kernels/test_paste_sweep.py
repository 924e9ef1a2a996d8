"""DALI's GPU ``multi_paste`` does not paste in order: a model of its cell sweep as the oracle for our feeds.

DALI's CPU operator pastes region after region (the last one covering a pixel wins), and every CPU-only test
sees that. The GPU kernel (``dali/kernels/imgproc/paste/paste_gpu.h``, ``CreateSampleDescriptors``, DALI
2.4.0, the version requirements.lock pins) instead cuts the output into cells at every region's start and end
coordinate, sweeps them row by row keeping a set of open regions, and fills each cell from the open region
with the highest index. A region is opened at its start cell and closed through the end coordinate's
events (``ending[x + 1]``, ``y_ending[y + 1]``); a region of size 0 has its end at its start, so those events
never fire and it stays open for the rest of the sweep: wherever its index is above a real tile's, the GPU
reads that empty paste's source (for our feeds: the grey image) instead of the tile. ``gpu_sweep`` below is a
Python model of that sweep, written from the C++; ``in_order`` is the CPU operator's rule. The test holds the
real planner's feeds (through ``DaliPainter.feeds``, the function the engine calls) to "every output pixel
comes from the same source under both", over 1,280 plans: default, mosaic 0.5, mixup, rotation/shear, and
mosaic closed. Before the fix (empty pastes anchored at (0, 0)) 3 of 48 default canvases painted grey over
their tiles (gpu_review_2.md, finding 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from loader.dataset import build_index
from loader.kernels.dali_paint import DaliPainter, PainterConfig
from loader.plan import Planner
from loader.sampler import epoch_order

S = 320
SETTINGS = {"default": {}, "mosaic0.5": {"mosaic": 0.5}, "mixup": {"mixup": 0.5, "mosaic": 0.7},
            "rotation-shear": {"degrees": 20.0, "shear": 5.0}, "mosaic-closed": {"mosaic": 0.0, "mixup": 0.0}}
PLANS, BATCH = 256, 32


def gpu_sweep(out_hw, anchors, shapes) -> np.ndarray:
    """(H, W) index of the region the GPU kernel reads each output pixel from (-1: none, zeros).

    ``anchors``, ``shapes``: (P, 2) (y, x) and (h, w) of the pastes, in paste order."""
    H, W = int(out_hw[0]), int(out_hw[1])
    assert (anchors >= 0).all(), "DALI's validation refuses negative anchors (and the crop below assumes it)"
    ys = sorted({0, H, *(int(a) for a in anchors[:, 0]), *(int(a + s) for a, s in zip(anchors[:, 0], shapes[:, 0]))})
    xs = sorted({0, W, *(int(a) for a in anchors[:, 1]), *(int(a + s) for a, s in zip(anchors[:, 1], shapes[:, 1]))})
    yi, xi = {v: k for k, v in enumerate(ys)}, {v: k for k, v in enumerate(xs)}
    ny, nx = len(ys) - 1, len(xs) - 1
    y_start = [[] for _ in range(ny + 1)]
    y_end = [[] for _ in range(ny + 1)]
    for i, ((ay, ax), (h, w)) in enumerate(zip(anchors.tolist(), shapes.tolist())):
        ev = (i, xi[ax], xi[ax + w])
        y_start[yi[ay]].append(ev)
        y_end[yi[ay + h]].append(ev)
    y_start[0].append((-1, 0, nx))  # the "no data" background over the whole output
    y_end[ny].append((-1, 0, nx))
    starting = [set() for _ in range(nx + 1)]
    ending = [set() for _ in range(nx + 1)]
    open_, cell = set(), np.full((ny, nx), -1, np.int64)
    for y in range(ny):
        for i, x0, x1 in y_start[y]:
            starting[x0].add(i)
            ending[x1].add(i)
        for x in range(nx):
            open_ |= starting[x]
            cell[y, x] = max(open_)  # "take top most region"
            open_ -= ending[x + 1]
        for i, x0, x1 in y_end[y + 1]:
            starting[x0].discard(i)
            ending[x1].discard(i)
    # cells -> pixels (cells past the output's edge are not drawn)
    return np.repeat(np.repeat(cell, np.diff(ys), 0), np.diff(xs), 1)[:H, :W]


def in_order(out_hw, anchors, shapes) -> np.ndarray:
    """The CPU operator's rule: regions pasted one after the other, the last one covering a pixel wins."""
    m = np.full((int(out_hw[0]), int(out_hw[1])), -1, np.int64)
    for i, ((ay, ax), (h, w)) in enumerate(zip(anchors.tolist(), shapes.tolist())):
        m[max(ay, 0):ay + h, max(ax, 0):ax + w] = i
    return m


def sources(region: np.ndarray, ids, in_anchors, out_anchors) -> np.ndarray:
    """Per pixel, what is read: (input id, row, column) in that input; (-1, 0, 0) where nothing is."""
    H, W = region.shape
    yy, xx = np.mgrid[:H, :W]
    r = np.maximum(region, 0)
    got = np.stack([ids[r], in_anchors[r, 0] + yy - out_anchors[r, 0], in_anchors[r, 1] + xx - out_anchors[r, 1]])
    got[:, region < 0] = [[-1], [0], [0]]
    return got


def test_the_sweep_model_reproduces_the_review_finding():
    """The model itself: a real tile under an empty paste anchored at (0, 0) loses its cells to it on the GPU,
    as the C++ reads; anchored at the far corner the empty paste opens nowhere."""
    shapes = np.array([[100, 100], [60, 60], [0, 0]])
    bad = np.array([[0, 0], [20, 20], [0, 0]])
    assert (gpu_sweep((100, 100), bad, shapes) == 2).all(), "the empty paste owns every cell"
    assert (in_order((100, 100), bad, shapes)[20:80, 20:80] == 1).all()
    good = np.array([[0, 0], [20, 20], [100, 100]])
    assert np.array_equal(gpu_sweep((100, 100), good, shapes), in_order((100, 100), good, shapes))
    # a zero-height paste inside the output is opened again in every row below it (its y end never fires)
    m = gpu_sweep((100, 100), np.array([[0, 0], [40, 50]]), np.array([[100, 100], [0, 30]]))
    assert (m[40:, 50:80] == 1).all() and (m[:40] == 0).all() and (m[40:, 80:] == 0).all()


@pytest.fixture(scope="module")
def painters():
    made = {}

    def get(mix: bool) -> DaliPainter:
        if mix not in made:
            made[mix] = DaliPainter(PainterConfig(4, mix, BATCH, "cpu"), threads=1)
        return made[mix]

    yield get
    for p in made.values():
        p.close()


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_pixel_has_the_in_order_source_under_the_gpu_sweep(demo_set, painters, setting):
    index = build_index(demo_set, verbose=False)
    planner = Planner(index, S, SETTINGS[setting], batch_size=BATCH, seed=13)
    hw = planner.load_shapes

    def load(i):  # only shapes matter for the feeds
        return np.zeros((*hw[i], 3), np.uint8)

    checked = tiles_seen = 0
    for lo in range(0, PLANS, BATCH):
        order = epoch_order(len(index), 13, lo // len(index))
        batch = planner.plan_batch(lo // len(index), np.arange(lo, lo + BATCH) % len(index), order, prev_order=order)
        painter = painters(batch.mix is not None)
        f = painter.feeds(batch, load)
        for c in range(len(f["canvas"])):
            out_hw = f["canvas"][c]
            if (out_hw == 1).all() and (f["shapes"][c] == 0).all():
                continue  # an unused 1x1 sample
            args = (f["out_anchors"][c], f["shapes"][c])
            gpu, cpu = gpu_sweep(out_hw, *args), in_order(out_hw, *args)
            want = sources(cpu, f["ids"][c], f["in_anchors"][c], f["out_anchors"][c])
            got = sources(gpu, f["ids"][c], f["in_anchors"][c], f["out_anchors"][c])
            wrong = (got != want).any(0)
            assert not wrong.any(), (f"{setting}: batch at {lo}, canvas {c}: {int(wrong.sum())} of {wrong.size} "
                                     f"pixels read from another source on the GPU than pasting in order gives")
            checked += 1
            tiles_seen += int((f["shapes"][c, 1:] > 0).all(1).sum())
    assert checked >= PLANS and tiles_seen >= PLANS, (checked, tiles_seen)
