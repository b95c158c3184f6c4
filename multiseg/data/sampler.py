"""The multi-dataset batch sampler: balanced, mixed, deterministic, resumable, DDP-sharded.

An epoch's plan is a pure function of ``(sizes, policy, weights, seed, epoch)``: an int64 array of
rows ``(dataset, index, aug_seed)``. Policies:

* ``replicate`` (the paper's balancing): every dataset's index list is repeated up to the largest
  dataset's cardinality ``L`` — each of its ``n`` samples appears ``floor(L / n)`` or
  ``ceil(L / n)`` times (whole shuffled passes, the last one cut) — so an epoch holds ``L`` samples
  of every dataset.
* ``none``: every sample once.
* ``weighted``: ``epoch_length`` samples (default: the sum of the sizes) split between the datasets
  in proportion to ``weights`` (largest-remainder rounding, so the counts are exact), each dataset's
  share drawn the same way as ``replicate``.

All rows are then shuffled together, so batches mix datasets. ``aug_seed`` fixes each sample's
augmentation, which makes a run reproducible whatever the number of workers.

DDP: :func:`shard` gives rank ``r`` of ``w`` the rows ``r, r + w, r + 2w, ...`` of the plan cut to a
multiple of ``w`` (or padded by wrapping with ``drop_last=False``), exactly like
``DistributedSampler``; it is a pure function, testable without a process group.

Resuming: ``state_dict(batches_done)`` records the epoch and how many batches the *trainer*
consumed (a DataLoader prefetches, so the sampler cannot know); ``load_state_dict`` makes the next
iteration start at that batch of the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

from multiseg.errors import MultisegError

BalancePolicy = Literal["replicate", "none", "weighted"]
BALANCE_POLICIES: tuple[str, ...] = ("replicate", "none", "weighted")
Key = tuple[int, int, int]


def samples_per_dataset(
    sizes: Sequence[int],
    policy: BalancePolicy = "replicate",
    weights: Sequence[float] | None = None,
    epoch_length: int | None = None,
) -> list[int]:
    """How many samples of each dataset one epoch draws."""
    if not sizes or any(n <= 0 for n in sizes):
        raise MultisegError(f"sampler: every dataset needs at least one sample, got sizes {list(sizes)}")
    if policy == "replicate":
        return [max(sizes)] * len(sizes)
    if policy == "none":
        return list(sizes)
    if policy != "weighted":
        raise MultisegError(f"sampler: unknown balance policy {policy!r}; expected one of {BALANCE_POLICIES}")
    if weights is None or len(weights) != len(sizes) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise MultisegError(f"sampler: 'weighted' needs one non-negative weight per dataset, got {weights}")
    total = epoch_length if epoch_length is not None else sum(sizes)
    exact = np.asarray(weights, np.float64) / float(sum(weights)) * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return [int(c) for c in counts]


def _draw(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices of ``range(n)``: whole shuffled passes, the last one cut."""
    passes = -(-count // n)
    return (
        np.concatenate([rng.permutation(n) for _ in range(passes)])[:count]
        if count
        else np.zeros(0, np.int64)
    )


def epoch_plan(
    sizes: Sequence[int],
    policy: BalancePolicy = "replicate",
    weights: Sequence[float] | None = None,
    seed: int = 0,
    epoch: int = 0,
    epoch_length: int | None = None,
) -> np.ndarray:
    """The shuffled rows ``(dataset, index, aug_seed)`` of one epoch (see module docstring)."""
    counts = samples_per_dataset(sizes, policy, weights, epoch_length)
    parts = []
    for d, (n, count) in enumerate(zip(sizes, counts, strict=True)):
        idx = _draw(n, count, np.random.default_rng([seed, epoch, d, 1]))
        parts.append(np.stack([np.full(count, d, np.int64), idx.astype(np.int64)], axis=1))
    rows = np.concatenate(parts)
    rng = np.random.default_rng([seed, epoch, 0, 2])
    rows = rows[rng.permutation(len(rows))]
    aug = rng.integers(0, 2**31 - 1, size=(len(rows), 1), dtype=np.int64)
    return np.concatenate([rows, aug], axis=1)


def shard(plan: np.ndarray, rank: int, world_size: int, drop_last: bool = True) -> np.ndarray:
    """Rank ``rank``'s rows of ``plan`` (strided; the tail cut, or wrapped around when not ``drop_last``)."""
    if not 0 <= rank < world_size:
        raise MultisegError(f"sampler: rank {rank} outside 0..{world_size - 1}")
    n = len(plan)
    if drop_last:
        plan = plan[: n - n % world_size]
    elif n % world_size:
        pad = world_size - n % world_size
        plan = np.concatenate([plan, plan[np.arange(pad) % n]])
    return plan[rank::world_size]


class MultiDatasetBatchSampler(Sampler[list[Key]]):
    """Batches of keys ``(dataset, index, aug_seed)`` for :class:`~multiseg.data.pipeline.MultiDataset`."""

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        *,
        policy: BalancePolicy = "replicate",
        weights: Sequence[float] | None = None,
        epoch_length: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if batch_size <= 0:
            raise MultisegError(f"sampler: batch size must be positive, got {batch_size}")
        samples_per_dataset(sizes, policy, weights, epoch_length)  # validate early
        self.sizes, self.batch_size, self.policy = list(sizes), batch_size, policy
        self.weights, self.epoch_length, self.seed = weights, epoch_length, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next iteration yields (from its first batch)."""
        self.epoch, self.start_batch = epoch, 0

    def rank_rows(self) -> np.ndarray:
        """This rank's rows of the current epoch's plan."""
        plan = epoch_plan(self.sizes, self.policy, self.weights, self.seed, self.epoch, self.epoch_length)
        return shard(plan, self.rank, self.world_size, self.drop_last)

    def __len__(self) -> int:
        """Batches in a whole epoch on this rank."""
        n = len(self.rank_rows())
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[Key]]:
        rows = self.rank_rows()
        n_batches = len(self)
        start, self.start_batch = self.start_batch, 0
        for b in range(start, n_batches):
            chunk = rows[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(int(d), int(i), int(s)) for d, i, s in chunk]

    def state_dict(self, batches_done: int) -> dict[str, int]:
        """Where to resume: the epoch and the number of its batches the trainer has consumed."""
        return {"epoch": self.epoch, "batch": batches_done, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at ``state["batch"]`` of epoch ``state["epoch"]`` (same seed required)."""
        if state.get("seed", self.seed) != self.seed:
            raise MultisegError(
                f"sampler: checkpoint seed {state['seed']} differs from the configured {self.seed}"
            )
        self.epoch, self.start_batch = int(state["epoch"]), int(state["batch"])
