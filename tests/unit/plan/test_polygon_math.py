"""The polygon math against Ultralytics' own functions, bitwise: ``resample_segments``, ``segment2box``, and
``densify`` as the part of ``resample_segments``' points that lie on chosen edges."""

from __future__ import annotations

import numpy as np
import pytest
from ultralytics.utils.ops import resample_segments, segment2box

from loader.plan.polygons import densify, resample, resample_count, segment_boxes


def _polygons(rng, k_max=7, long_every=0):
    K = int(rng.integers(1, k_max + 1))
    lens = rng.integers(3, 40, K)
    if long_every:
        lens[0] = rng.integers(990, 1100)  # around stock's 1,000: unchanged, more points, fewer
    return lens, [(rng.random((n, 2)) * rng.uniform(1, 900)).astype(np.float32) for n in lens]


def test_resample_is_ultralytics_resample_segments_bitwise():
    rng = np.random.default_rng(0)
    for trial in range(200):
        lens, segs = _polygons(rng, long_every=trial % 10 == 0)
        for n in (1000, int(lens.max()) + 1, 1200, 3, int(lens[0])):
            ref = np.concatenate(resample_segments([s.copy() for s in segs], n))
            assert np.array_equal(resample(np.concatenate(segs), lens, np.full(len(lens), n)), ref), (trial, n)


def test_resample_count_is_update_labels_info_rule():
    assert resample_count(np.array([0, 3, 999, 1000, 1001, 4000])).tolist() == [1000, 1000, 1000, 1000, 1002, 4001]


@pytest.mark.parametrize("width", [640, 97])
def test_segment_boxes_is_ultralytics_segment2box_bitwise(width):
    """Inside, outside, crossing edges and corners (polygons up to 3x the image, shifted off it)."""
    rng = np.random.default_rng(1)
    kinds = set()
    for trial in range(300):
        lens, segs = _polygons(rng)
        shift = rng.uniform(-1.5, 1.5, 2).astype(np.float32) * width
        segs = [s + shift for s in segs]
        ref = np.stack([segment2box(s, width, width) for s in segs])
        got = segment_boxes(np.concatenate(segs), lens, width, width)
        assert np.array_equal(got, ref), trial
        for s, b in zip(segs, ref):
            inside = s.min() >= 0 and s.max() <= width
            kinds.add("inside" if inside else "empty" if not b.any() else "crossing")
    assert kinds == {"inside", "empty", "crossing"}


def test_densify_keeps_resample_points_of_flagged_edges():
    """``densify`` = ``resample``'s points restricted to the flagged edges (vertices always), bitwise, in order;
    with ``near``, the ones next to the given edge parameters only."""
    rng = np.random.default_rng(2)
    for trial in range(150):
        lens, segs = _polygons(rng, k_max=5)
        n = np.full(len(lens), 1000)
        flags = rng.random(lens.sum()) < 0.3
        pts, new_lens = densify(np.concatenate(segs), lens, n, flags)
        full = resample(np.concatenate(segs), lens, n)
        expected, foff, voff = [], np.concatenate([[0], np.cumsum(n)]), np.concatenate([[0], np.cumsum(lens)])
        for k, m0 in enumerate(lens):
            m = m0 + 1
            x = np.linspace(0, m - 1, n[k] - m)  # stock's parameters, vertices inserted before equal values
            xp = np.arange(m)
            is_vertex = np.zeros(n[k], bool)
            is_vertex[np.searchsorted(x, xp) + np.arange(m)] = True
            xx = np.insert(x, np.searchsorted(x, xp), xp)
            f = full[foff[k]:foff[k + 1]]
            for q in range(n[k]):
                edge = min(int(np.floor(xx[q])), m0 - 1)
                if (is_vertex[q] and xx[q] < m - 1) or (not is_vertex[q] and flags[voff[k] + edge]
                                                         and xx[q] != np.floor(xx[q])):
                    expected.append(f[q])
        assert new_lens.sum() == len(expected) and np.array_equal(pts, np.array(expected, np.float32)), trial
        near = np.where(rng.random((lens.sum(), 2)) < 0.5, rng.random((lens.sum(), 2)), np.nan)
        some, some_lens = densify(np.concatenate(segs), lens, n, flags, near)
        assert (some_lens <= new_lens).all() and set(map(tuple, some)) <= set(map(tuple, pts))
