"""Plans are plain, immutable data: frozen fields, read-only arrays, the matrix always float64 3x3."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loader.plan import Plan, Planner, Tile


def test_plans_are_frozen_with_read_only_float64_matrices(demo_set):
    from loader.dataset import build_index

    index = build_index(demo_set, verbose=False)
    planner = Planner(index, 320, {"mixup": 1.0, "fliplr": 0.5}, batch_size=4, seed=1)
    order = np.arange(len(index))
    for pos in range(8):
        plan = planner.train_plan(0, pos, order)
        for p in (plan, plan.mix):
            assert p.M.dtype == np.float64 and p.M.shape == (3, 3) and not p.M.flags.writeable
            assert isinstance(p.tiles, tuple) and all(isinstance(t, Tile) for t in p.tiles)
        assert not plan.boxes.flags.writeable and plan.boxes.dtype == np.float32 and plan.cls.dtype == np.float32
        with pytest.raises(dataclasses.FrozenInstanceError):
            plan.keep_bgr = True
        with pytest.raises(ValueError):
            plan.M[0, 0] = 2.0
        with pytest.raises(dataclasses.FrozenInstanceError):
            plan.tiles[0].index = 3


def test_a_plan_owns_its_arrays():
    M = np.eye(3, dtype=np.float32)
    plan = Plan(index=0, out_hw=(4, 4), canvas_hw=(4, 4), tiles=[Tile(0, (4, 4), (0, 0, 4, 4), (0, 0))], M=M)
    M[0, 0] = 5  # the caller's array changes; the plan's does not
    assert plan.M[0, 0] == 1.0 and plan.M.dtype == np.float64
