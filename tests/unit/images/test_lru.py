"""The decoded-image buffer (the mosaic partners): bounded in bytes, least recent evicted, decoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.parametrize("kind", ["numpy", "tensor"])
def test_image_cache_is_bounded_in_bytes_and_decodes_once(kind):
    """The mosaic-partner buffer: numpy tiles (CPU engine) or tensors (the DALI engine's CUDA tiles)."""
    from loader.images import ImageCache

    def make(i):
        a = np.full((10, 10, 3), i, np.uint8)  # 300 bytes
        return torch.from_numpy(a) if kind == "tensor" else a

    cache = ImageCache(1000)
    calls = []
    for i in [0, 1, 0, 2, 3, 0]:
        im = cache.get(i, lambda i=i: calls.append(i) or make(i))
        assert int(im[0, 0, 0]) == i
    assert calls == [0, 1, 2, 3] and cache.bytes == 900 and len(cache) == 3  # 1 was evicted (least recent)
    assert 1 not in cache and 0 in cache and cache.stats()["evictions"] == 1
    if kind == "numpy":
        assert not cache.get(0, None).flags.writeable, "shared tiles are read-only"


def test_replace_swaps_an_image_and_keeps_the_byte_count():
    """The DALI engine keeps a host image's GPU upload in its place (gpu_review_2.md finding 4)."""
    from loader.images import ImageCache

    cache = ImageCache(1000)
    cache.get(0, lambda: np.zeros((10, 10, 3), np.uint8))  # 300 bytes
    cache.get(1, lambda: np.zeros((10, 10, 3), np.uint8))
    cache.replace(0, torch.zeros((10, 10, 6), dtype=torch.uint8))  # 600 bytes instead of 300
    assert cache.bytes == 900 and torch.is_tensor(cache.take([0])[0])
    cache.replace(2, np.zeros((10, 10, 3), np.uint8))  # new: 1200 > 1000, the least recent (1) goes
    assert cache.bytes == 900 and 1 not in cache and {0, 2} <= set(cache.take([0, 1, 2]))
    assert not cache.take([2])[2].flags.writeable


def test_a_replace_during_a_load_wins_and_is_counted_once():
    """A GPU upload that lands while another thread still loads the same image: the upload stays, bytes once."""
    from loader.images import ImageCache

    cache = ImageCache(10_000)
    up = torch.zeros((10, 10, 6), dtype=torch.uint8)  # 600 bytes

    def load():
        cache.replace(3, up)  # lands before the load finishes
        return np.zeros((10, 10, 3), np.uint8)

    got = cache.get(3, load)
    assert got is up and cache.bytes == 600 and len(cache) == 1
