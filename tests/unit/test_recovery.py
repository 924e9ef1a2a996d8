"""The bad-data policy on its own: deterministic replacement, the retry bound, the per-epoch budget."""

from __future__ import annotations

import logging

import pytest

from loader import BadDataError
from loader.images import UnreadableImage
from loader.recovery import BadDataPolicy

FILES = [f"/data/{i}.jpg" for i in range(100)]


def _step(bad: set):
    """A painting step that fails on any plan (a list of image indices) reading a bad image."""
    def step(plan):
        for i in plan:
            if i in bad:
                raise UnreadableImage(i, f"{FILES[i]}: truncated")
    return step


def test_a_bad_image_is_replaced_by_the_replan_without_it():
    policy = BadDataPolicy(0.5, FILES)
    asked = []

    def replan(exclude, error):
        asked.append((exclude, error.index))
        return [i for i in range(10) if i not in exclude][:3]

    plan = policy.attempt(_step({1, 2}), [0, 1, 2], replan, position=7, epoch=0)
    assert plan == [0, 3, 4] and asked == [(frozenset({1}), 1), (frozenset({1, 2}), 2)]
    assert policy.replaced == [(7, 1), (7, 2)]


def test_retries_are_bounded_and_name_the_files():
    policy = BadDataPolicy(1.0, FILES)
    k = iter(range(100))
    with pytest.raises(BadDataError, match="16 unreadable images in a row") as e:
        policy.attempt(_step(set(range(100))), [0], lambda exclude, error: [next(k) + 1], position=0, epoch=3)
    assert "/data/1.jpg" in str(e.value) and "epoch 3" in str(e.value)


def test_budget_per_epoch_and_final_report(caplog):
    policy = BadDataPolicy(0.02, FILES)
    for position in range(2):
        policy.attempt(_step({5}), [5], lambda exclude, error: [6], position, epoch=0)
    with caplog.at_level(logging.WARNING, logger="loader"):
        policy.check(100, epoch=0, final=True)  # 2 of 100 = the budget: allowed, reported
    assert any("2 samples used a replacement for 1 unreadable files" in r.getMessage() for r in caplog.records)
    policy.attempt(_step({5}), [5], lambda exclude, error: [6], 2, epoch=0)
    with pytest.raises(BadDataError, match="max_bad_fraction=0.02 of 100") as e:
        policy.check(100, epoch=0)
    assert "/data/5.jpg" in str(e.value)
    policy.start_epoch()
    policy.check(100, epoch=1)  # a new epoch starts with a clean slate
    assert policy.replaced == []


def test_the_budget_counts_samples_not_retries():
    """A sample with two bad tiles, and the same sample replanned after a reset, is one replaced sample."""
    policy = BadDataPolicy(0.01, FILES)
    replan = lambda exclude, error: [i for i in range(10) if i not in exclude][:3]  # noqa: E731
    policy.attempt(_step({1, 2}), [0, 1, 2], replan, position=7, epoch=0)
    policy.attempt(_step({1, 2}), [0, 1, 2], replan, position=7, epoch=0)  # replanned after a reset
    assert len(policy.replaced) == 4
    policy.check(100, epoch=0)  # 1 sample of 100: within the budget
    policy.attempt(_step({1}), [1], replan, position=8, epoch=0)
    with pytest.raises(BadDataError, match="2 samples of epoch 0"):
        policy.check(100, epoch=0)


def test_a_replan_that_refuses_stops_at_once():
    def refuse(exclude, error):
        raise BadDataError(f"validation image unreadable: {FILES[error.index]}")

    with pytest.raises(BadDataError, match="/data/3.jpg"):
        BadDataPolicy(1.0, FILES).attempt(_step({3}), [3], refuse, position=0, epoch=0)
