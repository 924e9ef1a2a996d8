"""The batch planner's own rules: the mosaic buffer's contents, batch-size independence."""

from __future__ import annotations

import numpy as np

from loader.dataset import build_index
from loader.plan import Planner
from loader.sampler import epoch_order


def test_mosaic_buffer_carries_over_epochs(demo_set):
    """Early in an epoch the partners come from this epoch's primaries so far and the end of the previous epoch's
    order, as the stock buffer (which keeps its last L - 1 loaded images across epochs) has them."""
    index = build_index(demo_set, verbose=False)
    planner = Planner(index, 320, None, batch_size=2, seed=0)  # L = min(24, 16, 1000) = 16: 15 images
    L1 = planner.buffer_len - 1
    order0, order1 = epoch_order(len(index), 0, 0), epoch_order(len(index), 0, 1)
    batch = planner.plan_batch(1, np.arange(8), order1, prev_order=order0)
    alone = planner.plan_batch(1, np.arange(8), order1)
    from_prev = 0
    for p in range(8):
        a, b = batch.tile_off[p], batch.tile_off[p + 1]
        partners = set(batch.tile_index[a + 1:b].tolist())
        recent = set(order1[:p + 1].tolist()) | set(order0[len(order0) - (L1 - p - 1):].tolist())
        assert partners <= recent, p
        from_prev += bool(partners - set(order1[:p + 1].tolist()))
        a2, b2 = alone.tile_off[p], alone.tile_off[p + 1]
        assert set(alone.tile_index[a2 + 1:b2].tolist()) <= set(order1[:p + 1].tolist())
    assert from_prev >= 4, "the previous epoch's tail is drawn from"
    # epoch 0 has no previous epoch: the buffer starts empty, as stock's does
    assert planner.plan_batch(0, [0], order0, prev_order=None).tile_index.tolist() in ([int(order0[0])] * 4,
                                                                                         [int(order0[0])])


def test_plans_do_not_depend_on_the_batch_size(demo_set):
    index = build_index(demo_set, verbose=False)
    planner = Planner(index, 320, {"mixup": 0.5, "degrees": 5}, batch_size=4, seed=2)
    order = epoch_order(len(index), 2, 3)
    whole = planner.plan_batch(3, np.arange(12), order)
    parts = [planner.plan_batch(3, np.arange(lo, lo + 5), order).plans() for lo in (0, 5)]
    for j, p in enumerate(parts[0] + parts[1][:2]):
        q = whole.plan(j)
        assert np.array_equal(p.M, q.M) and np.array_equal(p.boxes, q.boxes) and p.tiles == q.tiles
        assert (p.mix is None) == (q.mix is None) and p.mix_r == q.mix_r
