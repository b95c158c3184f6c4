"""The multi-dataset sampler: replication counts, policies, determinism, resuming and DDP shards."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from multiseg.data.sampler import MultiDatasetBatchSampler, epoch_plan, samples_per_dataset, shard
from multiseg.errors import MultisegError

SIZES = [7, 3, 20]


def test_replicate_counts_are_exact() -> None:
    plan = epoch_plan(SIZES, "replicate", seed=1, epoch=0)
    assert len(plan) == 3 * 20
    for d, n in enumerate(SIZES):
        idx = plan[plan[:, 0] == d, 1]
        assert len(idx) == 20
        counts = Counter(idx.tolist())
        assert set(counts) == set(range(n))
        assert set(counts.values()) <= {20 // n, -(-20 // n)}
        assert sum(counts.values()) == 20


def test_none_and_weighted_policies() -> None:
    plan = epoch_plan(SIZES, "none", seed=0)
    assert sorted(map(tuple, plan[:, :2].tolist())) == [(d, i) for d, n in enumerate(SIZES) for i in range(n)]
    assert samples_per_dataset(SIZES, "weighted", [1, 1, 2]) == [8, 7, 15]
    assert samples_per_dataset(SIZES, "weighted", [1, 0, 0], epoch_length=10) == [10, 0, 0]
    plan = epoch_plan(SIZES, "weighted", [1, 1, 2], seed=0)
    assert np.bincount(plan[:, 0]).tolist() == [8, 7, 15]
    with pytest.raises(MultisegError, match="weight"):
        samples_per_dataset(SIZES, "weighted", [1, 1])
    with pytest.raises(MultisegError, match="policy"):
        samples_per_dataset(SIZES, "bogus")  # type: ignore[arg-type]
    with pytest.raises(MultisegError, match="at least one sample"):
        samples_per_dataset([3, 0])


def test_plan_is_deterministic_mixed_and_changes_per_epoch() -> None:
    a, b = epoch_plan(SIZES, seed=5, epoch=2), epoch_plan(SIZES, seed=5, epoch=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, epoch_plan(SIZES, seed=5, epoch=3))
    assert not np.array_equal(a, epoch_plan(SIZES, seed=6, epoch=2))
    switches = int((np.diff(a[:, 0]) != 0).sum())
    assert switches > 20  # shuffled together (about 40 of 59 expected), not dataset after dataset


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_ddp_shards_partition_the_plan(world_size: int) -> None:
    plan = epoch_plan(SIZES, seed=0)
    shards = [shard(plan, r, world_size) for r in range(world_size)]
    usable = len(plan) - len(plan) % world_size
    assert all(len(s) == usable // world_size for s in shards)
    rows = sorted(map(tuple, np.concatenate(shards).tolist()))
    assert rows == sorted(map(tuple, plan[:usable].tolist()))
    padded = [shard(plan, r, world_size, drop_last=False) for r in range(world_size)]
    assert len({len(s) for s in padded}) == 1
    assert sum(len(s) for s in padded) == -(-len(plan) // world_size) * world_size
    with pytest.raises(MultisegError, match="rank"):
        shard(plan, world_size, world_size)


def test_batch_sampler_yields_whole_batches_of_keys() -> None:
    sampler = MultiDatasetBatchSampler(SIZES, 8, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 60 // 8
    assert all(len(b) == 8 for b in batches)
    d, i, s = batches[0][0]
    assert 0 <= d < 3 and 0 <= i < SIZES[d] and isinstance(s, int)
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_batch_sampler_ddp_ranks_are_disjoint() -> None:
    ranks = [list(MultiDatasetBatchSampler(SIZES, 4, seed=2, rank=r, world_size=3)) for r in range(3)]
    keys = [k for batches in ranks for b in batches for k in b]
    assert len(keys) == 3 * 20 == len(set(keys))


def test_resume_mid_epoch_continues_the_same_plan() -> None:
    sampler = MultiDatasetBatchSampler(SIZES, 4, seed=9)
    sampler.set_epoch(4)
    full = list(sampler)
    state = sampler.state_dict(batches_done=6)
    resumed = MultiDatasetBatchSampler(SIZES, 4, seed=9)
    resumed.load_state_dict(state)
    assert list(resumed) == full[6:]
    assert list(resumed) == full  # the offset applies once: iterating again restarts at batch 0
    with pytest.raises(MultisegError, match="seed"):
        MultiDatasetBatchSampler(SIZES, 4, seed=1).load_state_dict(state)
