import numpy as np
import pytest

from loader.sampler import ShardedSampler, epoch_order, shard


@pytest.mark.parametrize("n,world", [(1, 1), (10, 1), (10, 3), (17, 4), (5, 8), (1000, 7)])
def test_shards_cover_are_equal_and_disjoint_up_to_padding(n, world):
    shards = [ShardedSampler(n, seed=3, rank=r, world_size=world) for r in range(world)]
    idx = [s.indices() for s in shards]
    lens = {len(i) for i in idx}
    assert lens == {-(-n // world)}, "every rank gets the same number of samples"
    assert all(len(s) == len(i) for s, i in zip(shards, idx))
    allidx = np.concatenate(idx)
    assert set(allidx.tolist()) == set(range(n)), "every sample is seen in an epoch"
    padding = len(allidx) - n
    assert padding < world
    # disjoint except for the wrap-around padding
    _, counts = np.unique(allidx, return_counts=True)
    assert (counts - 1).sum() == padding


def test_drop_last_is_disjoint_and_equal():
    idx = [ShardedSampler(17, rank=r, world_size=4, drop_last=True).indices() for r in range(4)]
    assert {len(i) for i in idx} == {4}
    flat = np.concatenate(idx)
    assert len(set(flat.tolist())) == len(flat) == 16


def test_deterministic_per_seed_and_epoch():
    a, b = ShardedSampler(100, seed=5), ShardedSampler(100, seed=5)
    assert np.array_equal(a.indices(), b.indices())
    a.set_epoch(1)
    assert not np.array_equal(a.indices(), b.indices()), "set_epoch reshuffles"
    b.set_epoch(1)
    assert np.array_equal(a.indices(), b.indices())
    assert not np.array_equal(ShardedSampler(100, seed=6).indices(), ShardedSampler(100, seed=5).indices())
    assert np.array_equal(epoch_order(50, 1, 2), epoch_order(50, 1, 2))
    assert sorted(epoch_order(50, 1, 2).tolist()) == list(range(50))
    assert np.array_equal(epoch_order(7, 0, 0, shuffle=False), np.arange(7))


def test_resume_mid_epoch_gives_the_rest():
    s = ShardedSampler(50, seed=9, rank=1, world_size=3)
    s.set_epoch(4)
    full = list(ShardedSampler(50, seed=9, rank=1, world_size=3).indices(4))
    it = iter(s)
    head = [next(it) for _ in range(7)]
    state = s.state_dict()
    r = ShardedSampler(50, seed=0, rank=1, world_size=3)
    r.load_state_dict(state)
    assert head + list(r) == full
    assert r.position == len(r)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        ShardedSampler(0)
    with pytest.raises(ValueError):
        ShardedSampler(10, rank=2, world_size=2)
    with pytest.raises(ValueError):
        shard(np.arange(5), -1, 2)
    s = ShardedSampler(10, world_size=2)
    with pytest.raises(ValueError, match="world_size"):
        s.load_state_dict(dict(ShardedSampler(10, world_size=3).state_dict()))
    with pytest.raises(ValueError, match="position"):
        s.load_state_dict(dict(s.state_dict(), position=99))
