"""One generic save/load-state test (as torchdata's ``run_test_save_load_state``), run against every stateful part:
items after restoring a state saved after ``k`` items equal those of an uninterrupted run, for several ``k``."""

from __future__ import annotations

import hashlib
from itertools import islice

import pytest

from loader import DetectionLoader
from loader.sampler import ShardedSampler


def run_test_save_load_state(make, n: int, stops, digest=lambda x: x) -> None:
    """``make()``: a fresh stateful iterable (``state_dict`` / ``load_state_dict``; optionally a context manager).
    Its first ``n`` items, read in one go, must equal the first ``k`` read from one object plus the rest read
    from a new one restored from the state saved after them, for every ``k`` in ``stops``."""

    def use(obj, fn):
        try:
            return fn(obj)
        finally:
            if hasattr(obj, "close"):
                obj.close()

    ref = use(make(), lambda o: [digest(x) for x in islice(iter(o), n)])
    assert len(ref) == n
    for k in stops:
        def head(o, k=k):
            it = iter(o)
            return [digest(next(it)) for _ in range(k)], o.state_dict()

        first, state = use(make(), head)

        def tail(o, k=k):
            o.load_state_dict(state)
            return [digest(x) for x in islice(iter(o), n - k)]

        assert first + use(make(), tail) == ref, f"resumed after {k} items"


def _batch_digest(b: dict) -> str:
    h = hashlib.sha256()
    for key in ("img", "cls", "bboxes", "batch_idx"):
        h.update(b[key].cpu().contiguous().numpy().tobytes())
    h.update(repr(b["im_file"]).encode())
    return h.hexdigest()


def test_sampler():
    def make():
        s = ShardedSampler(23, seed=5, rank=1, world_size=2)
        s.set_epoch(3)
        return s

    run_test_save_load_state(make, 12, [0, 1, 5, 11])


CASES = {"cpu-train": dict(backend="cpu", hyp={"mixup": 0.3}), "cpu-val": dict(backend="cpu", augment=False),
         "dali-train": dict(backend="dali"), "dali-val": dict(backend="dali", augment=False, rect=True)}


@pytest.mark.parametrize("case", list(CASES))
def test_loader(demo_set, case):
    kw = CASES[case]
    n = 6 if kw.get("augment", True) else 3

    def make():
        dl = DetectionLoader(demo_set, imgsz=128, batch_size=2 if "val" in case else 4, workers=2, seed=9,
                             index_cache=False, **kw)
        dl.set_epoch(1)
        return dl

    run_test_save_load_state(make, n, [1, n - 1], _batch_digest)
