"""ImageSource: one get(i) whatever store answers; decode once; unreadable images reported once, never reread."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from loader.dataset import build_index
from loader.images import ImageSource, UnreadableImage
from loader.plan import Planner


def _source(index, imgsz=160, **kw):
    shapes = Planner(index, imgsz, augment=False).load_shapes
    return ImageSource(index, shapes, imgsz=imgsz, budget_bytes=10 << 20, key="test", **kw)


def test_get_is_the_decode_at_load_size_and_decodes_once(demo_set):
    index = build_index(demo_set, verbose=False)
    with _source(index) as src:
        im = src.get(3)
        assert im.shape == (90, 160, 3) and im.dtype == np.uint8 and not im.flags.writeable
        assert np.array_equal(im, src.decode(3))
        assert src.get(3) is im and src.decodes == 1 and 3 in src and 4 not in src
        src.put(4, np.zeros((90, 160, 3), np.uint8))  # e.g. a tile the DALI decoder made
        assert 4 in src and src.get(4).max() == 0 and src.decodes == 2


@pytest.mark.parametrize("store", [None, "disk", "ram"])
def test_every_store_answers_the_same_pixels(demo_set, copy_of, store):
    index = build_index(copy_of(demo_set), cache=False, verbose=False)
    with _source(index) as plain, _source(index, store=store, workers=2) as src:
        for i in (0, 5, 23):
            assert np.array_equal(src.get(i), plain.get(i)), (store, i)
        assert (src.cache_bytes > 0) == (store is not None)


@pytest.mark.parametrize("store", ["disk", "ram"])
def test_a_store_never_serves_another_decode_modes_pixels(demo_set, copy_of, store):
    """Caches built with reduced_decode=True hold other pixels than the full decode's: a user of another mode
    (e.g. the default after a run with True) gets its own cache, not those pixels."""
    index = build_index(copy_of(demo_set), cache=False, verbose=False)
    with _source(index, reduced_decode=False) as full, _source(index, reduced_decode=True) as reduced:
        assert not np.array_equal(full.get(5), reduced.get(5))  # the two modes differ on this set
        with _source(index, store=store, reduced_decode=True, workers=2) as a, \
                _source(index, store=store, reduced_decode=False, workers=2) as b:
            for i in (0, 5, 23):
                assert np.array_equal(a.get(i), reduced.get(i)) and np.array_equal(b.get(i), full.get(i)), i


def test_an_unreadable_image_is_reported_once_and_never_reread(demo_set, copy_of, caplog):
    index = build_index(copy_of(demo_set), cache=False, verbose=False)
    victim = Path(index.im_files[2])
    victim.write_bytes(b"\xff\xd8 truncated")
    with _source(index) as src, caplog.at_level(logging.WARNING, logger="loader"):
        for _ in range(3):
            with pytest.raises(UnreadableImage) as e:
                src.get(2)
            assert e.value.index == 2 and victim.name in e.value.reason
        victim.unlink()  # gone now: the source does not look again
        with pytest.raises(UnreadableImage):
            src.get(2)
        assert src.is_unreadable(2) and list(src.unreadable) == [2]
    warnings = [r for r in caplog.records if "unreadable at training time" in r.getMessage()]
    assert len(warnings) == 1 and victim.name in warnings[0].getMessage()


def test_ram_store_flags_images_unreadable_when_built(demo_set, copy_of):
    index = build_index(copy_of(demo_set), cache=False, verbose=False)
    Path(index.im_files[7]).write_bytes(b"")
    with _source(index, store="ram", workers=2) as src:
        assert src.is_unreadable(7) and src.get(6).shape == (90, 160, 3)
        with pytest.raises(UnreadableImage):
            src.get(7)


def test_an_unknown_store_is_refused(demo_set):
    with pytest.raises(ValueError, match="store"):
        _source(build_index(demo_set, verbose=False), store="tape")


def test_reduced_decode_modes():
    """"equivalent": DCT-reduced only at exactly half the source (where it gives Ultralytics' images); True:
    wherever the reduced image still covers the target; False: never."""
    from loader.images import reduction_for

    assert reduction_for(720, 1280, 360, 640, "equivalent") == 2
    assert reduction_for(1080, 1920, 504, 896, "equivalent") == 1  # 0.467: not equivalent (sharpness 0.57x)
    assert reduction_for(480, 640, 120, 160, "equivalent") == 1  # exactly 1/4: not equivalent either (0.54x)
    assert reduction_for(1080, 1920, 504, 896, True) == 2 and reduction_for(480, 640, 120, 160, True) == 4
    assert reduction_for(2160, 3840, 504, 896, True) == 4 and reduction_for(720, 1280, 360, 640, False) == 1
