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


def test_state_decides_seed_hyp_and_buffer_when_restored_into_another_loader(demo_set):
    """A run with seed 3 that closed mosaic and halved its batch, saved mid-epoch, then restored into loaders
    built with seed 0 and another batch size: the rest equals the uninterrupted run bitwise. (Before the fix the
    order came from the saved seed and the augmentation from the constructor's: batches of neither run.)"""
    kw = dict(imgsz=128, workers=2, index_cache=False, backend="cpu", hyp={"mixup": 0.3, "degrees": 5.0})

    def run(dl, k):
        it = iter(dl)
        return [_batch_digest(next(it)) for _ in range(k)]

    with DetectionLoader(demo_set, batch_size=2, seed=3, **kw) as dl:  # buffer min(24, 16, 1000) = 16
        dl.set_epoch(1)
        run(dl, 2)
        dl.close_mosaic()
        dl.set_batch_size(1)
        run(dl, 1)
        state = dl.state_dict()
        ref = run(dl, 4)
    assert state["sampler"]["seed"] == 3 and state["hyp"]["mosaic"] == 0.0 and state["buffer_len"] == 16
    for other in (dict(batch_size=2, seed=0), dict(batch_size=1, seed=0)):  # batch 1: buffer min(24, 8, 1000) = 8
        with DetectionLoader(demo_set, **other, **kw) as dl2:
            dl2.load_state_dict(state)
            assert dl2.batch_size == 1 and dl2.planner.seed == 3 and dl2.planner.buffer_len == 16
            assert run(dl2, 4) == ref, other
