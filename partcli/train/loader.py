"""The training DataLoader: one per run (so workers can persist), each epoch's order and every sample's
augmentation drawn from seeds derived from (seed, epoch, sample), never from a worker's own RNG stream.

So the samples a step sees do not depend on ``--workers``, on whether the workers persist, or on where a run
was resumed: a resumed run (on another machine, with other ``--workers``) replays the epochs it has left as an
uninterrupted run would.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler, RandomSampler, Sampler


class SeededItems(Dataset):
    """``dataset[(index, seed)]``: item ``index`` with the CPU RNG seeded by ``seed`` for its transform."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):  # the main process's stream (attack noise) is left as it was
            torch.manual_seed(seed)
            return self.dataset[index]


class EpochSampler(Sampler):
    """(index, seed) pairs in an order drawn from ``epoch_seed(epoch)``; ``set_epoch`` before each epoch.

    ``shard``: a ``DistributedSampler`` (torchrun) whose ``set_epoch`` reshuffles; otherwise a seeded permutation.
    """

    def __init__(self, size: int, epoch_seed: Callable[[int], int], shard: DistributedSampler | None = None):
        self.size, self.epoch_seed, self.shard, self.epoch = size, epoch_seed, shard, 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.shard is not None:
            self.shard.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.shard) if self.shard is not None else self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        seed = self.epoch_seed(self.epoch)
        if self.shard is not None:
            order = iter(self.shard)
        else:
            order = iter(RandomSampler(range(self.size), generator=torch.Generator().manual_seed(seed)))
        for index in order:
            yield int(index), sample_seed(seed, int(index))


def sample_seed(epoch_seed: int, index: int) -> int:
    """A sample's augmentation seed in one epoch (distinct for distinct samples and epochs)."""
    return (epoch_seed * 1_000_003 + index) % 2**63
