"""Atoms-balanced distributed micro-batching, planned from the manifest's atom counts alone.

Every epoch has one global plan: frames in a seeded order (shard order then frames within each shard for
"shard", one permutation for "global", dataset order for "none"), packed greedily into micro-batches of at
most `max_atoms` atoms (a frame larger than that sits alone). Training plans are cut to a multiple of
world_size * grad_accum so every rank gets the same number of micro-batches and every optimizer step lies in
one epoch; rank r takes micro-batches r, r + world, ... The same plan serves LMDB and WebDataset datasets.
A training run iterates one sampler across epochs (`set_epoch(..., onward=True)`), so one DataLoader and its
workers serve the whole run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Shuffle = Literal["none", "shard", "global"]


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch of the plan: dataset indices of its frames, its epoch and its position on its rank."""

    epoch: int
    position: int
    indices: tuple[int, ...]


def frame_order(
    shard_sizes: Sequence[int],
    *,
    epoch: int,
    seed: int,
    shuffle: Shuffle,
    stream: tuple[int, ...] = (),
) -> np.ndarray:
    """Dataset indices in this epoch's order (`stream`: more seed words, for independent orders of one epoch)."""
    total = int(np.sum(shard_sizes))
    if shuffle == "none":
        return np.arange(total)
    rng = np.random.default_rng([seed, epoch, 0x5A11, *stream])
    if shuffle == "global":
        return rng.permutation(total)
    offsets = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(np.int64)
    return np.concatenate(
        [
            offsets[s] + rng.permutation(int(shard_sizes[s]))
            for s in rng.permutation(len(shard_sizes))
        ]
        or [np.zeros(0, np.int64)]
    )


def pack(order: np.ndarray, natoms: np.ndarray, max_atoms: int) -> list[tuple[int, ...]]:
    """Greedy packing of frames (in `order`) into micro-batches of at most `max_atoms` atoms."""
    batches: list[tuple[int, ...]] = []
    current: list[int] = []
    filled = 0
    for index, count in zip(order.tolist(), natoms[order].tolist()):
        if current and filled + count > max_atoms:
            batches.append(tuple(current))
            current, filled = [], 0
        current.append(index)
        filled += count
    if current:
        batches.append(tuple(current))
    return batches


class AtomsBalancedSampler:
    """Yields this rank's MicroBatch keys of one epoch from a position (`set_epoch`), or of that epoch and every
    later one (`onward`)."""

    def __init__(
        self,
        natoms: np.ndarray,
        shard_sizes: Sequence[int],
        max_atoms: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        grad_accum: int = 1,
        seed: int = 0,
        shuffle: Shuffle = "shard",
        drop_last: bool = True,
    ):
        if int(np.sum(shard_sizes)) != len(natoms):
            raise ValueError(
                f"shard sizes sum to {int(np.sum(shard_sizes))} but there are {len(natoms)} frames"
            )
        self.natoms = np.asarray(natoms, dtype=np.int64)
        self.shard_sizes = [int(s) for s in shard_sizes]
        self.max_atoms, self.rank, self.world_size = max_atoms, rank, world_size
        self.grad_accum, self.seed, self.shuffle, self.drop_last = (
            grad_accum,
            seed,
            shuffle,
            drop_last,
        )
        self.epoch, self.start, self.onward = 0, 0, False
        self.dropped = (
            0  # micro-batches cut from the last planned epoch (fewer than world_size * grad_accum)
        )
        # the plans of the last two epochs asked for: an epoch-spanning iteration plans the next epoch while
        # the training loop still reads the current one
        self._cache: dict[int, list[tuple[int, ...]]] = {}

    def plan(self, epoch: int) -> list[tuple[int, ...]]:
        """The global micro-batch plan of `epoch` (every rank computes the same one)."""
        if epoch not in self._cache:
            batches = pack(self.order(epoch), self.natoms, self.max_atoms)
            if self.drop_last:
                unit = self.world_size * self.grad_accum
                self.dropped = len(batches) % unit
                batches = batches[: len(batches) - self.dropped]
            self._cache = dict(list(self._cache.items())[-1:])
            self._cache[epoch] = batches
        return self._cache[epoch]

    def order(self, epoch: int) -> np.ndarray:
        """Dataset indices of `epoch` in the order they are packed."""
        return frame_order(self.shard_sizes, epoch=epoch, seed=self.seed, shuffle=self.shuffle)

    def rank_batches(self, epoch: int) -> list[tuple[int, ...]]:
        return self.plan(epoch)[self.rank :: self.world_size]

    def set_epoch(self, epoch: int, start: int = 0, *, onward: bool = False) -> None:
        """Iterate `epoch` from micro-batch `start` of this rank (resume within an epoch); `onward`: then every
        later epoch from its first micro-batch, without end (a training run's one DataLoader)."""
        self.epoch, self.start, self.onward = epoch, start, onward

    def __len__(self) -> int:
        """Micro-batches left in the epoch `set_epoch` named (an onward iteration goes on past them)."""
        return max(len(self.rank_batches(self.epoch)) - self.start, 0)

    def __iter__(self) -> Iterator[MicroBatch]:
        epoch, start, onward = self.epoch, self.start, self.onward
        while True:
            batches = self.rank_batches(epoch)
            for position in range(start, len(batches)):
                yield MicroBatch(epoch, position, batches[position])
            if not (onward and batches):  # an empty epoch ends an onward iteration too
                return
            epoch, start = epoch + 1, 0
