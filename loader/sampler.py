"""Deterministic, shardable, resumable sample order.

The order of an epoch is a pure function of (n, seed, epoch, shuffle), so every
rank computes the same permutation without communicating, and a resumed run
recomputes it instead of storing it. Sharding follows torch's DistributedSampler:
the permutation is padded by wrap-around to a multiple of ``world_size`` and rank
``r`` takes every ``world_size``-th element starting at ``r``, so shards are
disjoint (up to the padding) and all of equal length.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_order", "shard", "ShardedSampler"]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The global order of ``n`` samples for one epoch (int64)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, 0x5A17]))
    return rng.permutation(n).astype(np.int64, copy=False)


def shard(order: np.ndarray, rank: int, world_size: int, drop_last: bool = False) -> np.ndarray:
    """Rank ``rank``'s equal-length share of ``order``.

    ``drop_last=False`` pads by wrap-around (some samples appear twice in an epoch
    across ranks); ``drop_last=True`` truncates instead (some samples are skipped).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = len(order)
    if drop_last:
        total = (n // world_size) * world_size
        order = order[:total]
    else:
        total = -(-n // world_size) * world_size
        if total > n:
            if n == 0:
                raise ValueError("cannot shard an empty order")
            reps = -(-(total - n) // n)
            order = np.concatenate([order, np.tile(order, reps)[: total - n]])
    return order[rank:total:world_size]


class ShardedSampler:
    """Iterates this rank's sample indices for the current epoch; resumable.

    ``state_dict()`` records (seed, epoch, position); ``position`` is the number of
    indices already handed out in this epoch. The consumer that batches indices is
    the one that should advance it (``advance``), so a resume restarts at the first
    sample that did not reach the training loop.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, drop_last: bool = False):
        if n <= 0:
            raise ValueError(f"sampler needs at least one sample, got n={n}")
        shard(np.arange(1), rank, world_size)  # validates rank / world_size
        if drop_last and n < world_size:
            raise ValueError(f"drop_last with n={n} < world_size={world_size} leaves ranks empty")
        self.n, self.seed, self.rank, self.world_size = int(n), int(seed), int(rank), int(world_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.world_size
        return -(-self.n // self.world_size)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """All of this rank's indices for ``epoch`` (default: the current one)."""
        e = self.epoch if epoch is None else epoch
        return shard(epoch_order(self.n, self.seed, e, self.shuffle), self.rank, self.world_size, self.drop_last)

    def remaining(self) -> np.ndarray:
        """Indices of the current epoch not yet consumed."""
        return self.indices()[self.position:]

    def __iter__(self):
        idx = self.remaining()
        for i in idx:
            self.position += 1
            yield int(i)

    def advance(self, k: int) -> None:
        self.position = min(self.position + int(k), len(self))

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (DDP: call with the same value on every rank)."""
        self.epoch = int(epoch)
        self.position = 0

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "epoch": self.epoch, "position": self.position,
                "rank": self.rank, "world_size": self.world_size, "shuffle": self.shuffle,
                "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        for key in ("n", "shuffle", "drop_last"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"sampler state has {key}={state[key]!r}, this sampler has {getattr(self, key)!r}")
        if state.get("world_size", self.world_size) != self.world_size:
            raise ValueError(
                f"cannot resume a world_size={state['world_size']} sampler state with world_size={self.world_size}")
        pos = int(state["position"])
        if not 0 <= pos <= len(self):
            raise ValueError(f"sampler position {pos} outside [0, {len(self)}]")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), pos
