"""The epoch runtime with a real engine: lazy, bounded prefetch, a newer iterator retires the older, the sampler
advances by delivered batches only, the bad-data budget stops an epoch."""

from __future__ import annotations

import pytest

from loader import BadDataError, DetectionLoader
from loader.engines.cpu import CpuEngine


class _Recording(CpuEngine):
    """The CPU engine, recording which batches it was asked for (to see the runtime's scheduling)."""

    def __init__(self, source, workers):
        super().__init__(source, workers)
        self.asked = []

    def tasks(self, work):
        self.asked.append(work.b)
        return super().tasks(work)


@pytest.fixture
def loader(demo_set):
    with DetectionLoader(demo_set, imgsz=128, batch_size=4, workers=2, prefetch=2) as dl:
        dl.runner.engine = _Recording(dl.images, 2)
        yield dl


def test_lazy_and_prefetch_bounded(loader):
    it = iter(loader)
    assert loader.runner.engine.asked == [], "nothing planned before the first next()"
    next(it)
    assert loader.runner.engine.asked == [0, 1], "the first batch and one more: prefetch=2 in flight"
    next(it)
    assert loader.runner.engine.asked == [0, 1, 2]
    assert loader.sampler.position == 8, "advanced by the two delivered batches only"


def test_a_newer_iterator_retires_the_older(loader):
    old = iter(loader)
    next(old)
    new = iter(loader)
    first = next(new)
    assert first["im_file"] != () and loader.sampler.position == 8
    with pytest.raises(StopIteration):
        next(old)
    assert len(list(new)) == len(loader) - 2


def test_reset_replans_from_the_position(loader):
    it = iter(loader)
    next(it)
    loader.reset()
    asked = len(loader.runner.engine.asked)
    rest = list(iter(loader))
    assert len(rest) == len(loader) - 1 and loader.runner.engine.asked[asked] == 1


def test_bad_data_budget_stops_the_epoch(demo_set, copy_of):
    from pathlib import Path

    data = copy_of(demo_set)
    with DetectionLoader(data, imgsz=128, batch_size=8, workers=2, index_cache=False, max_bad_fraction=0.0) as dl:
        Path(dl.index.im_files[0]).unlink()
        with pytest.raises(BadDataError, match="max_bad_fraction=0.0"):
            list(dl)
