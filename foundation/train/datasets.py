"""Datasets whose items are whole training micro-batches, built inside DataLoader workers.

`MapBatchDataset` reads LMDB shards by index; `StreamBatchDataset` streams WebDataset shards. Both realise the
same `AtomsBalancedSampler` plan with the same `BatchBuilder`, so they give identical batches. For denoising,
the builder adds Gaussian noise to the positions before the graph is built; the noise of a frame depends only
on (seed, epoch, dataset index): fresh every time a frame is drawn, and the same after a resume.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from foundation.data.batch import AtomsBatch, collate_frames
from foundation.data.dataset import FrameDataset
from foundation.data.schema import Frame
from foundation.train import handoff
from foundation.train.sampler import AtomsBalancedSampler, MicroBatch


@dataclass
class TrainItem:
    """One micro-batch: the clean batch (E/F/S terms) and/or its noisy copy (denoising), and where it came from."""

    clean: AtomsBatch | None
    noisy: AtomsBatch | None
    epoch: int
    position: int

    @property
    def num_atoms(self) -> int:
        batch = self.clean if self.clean is not None else self.noisy
        return int(batch.natoms.sum())

    def pin_memory(self) -> TrainItem:
        return dataclasses.replace(
            self,
            clean=self.clean.pin_memory() if self.clean is not None else None,
            noisy=self.noisy.pin_memory() if self.noisy is not None else None,
        )

    def __reduce__(self):
        """Pickled (a loader worker's hand-off) with each batch's tensors in one shared buffer (train/handoff.py)."""
        packed = [None if b is None else handoff.pack(b) for b in (self.clean, self.noisy)]
        return _unpacked_item, (*packed, self.epoch, self.position)


def _unpacked_item(clean, noisy, epoch: int, position: int) -> TrainItem:
    clean, noisy = (None if b is None else handoff.unpack(*b) for b in (clean, noisy))
    return TrainItem(clean, noisy, epoch, position)


def position_noise(natoms: int, std: float, *, seed: int, epoch: int, index: int) -> np.ndarray:
    """Gaussian position noise (natoms, 3) in A, a pure function of (seed, epoch, dataset index), mean-centred per
    structure: a rigid translation changes nothing a translation-invariant model sees, so it can be neither
    predicted nor learned (for a 1-2 atom cell it would be most of the target). Both the displacement and the
    denoising target are the centred noise."""
    rng = np.random.default_rng([seed, epoch, index, 0xD0])
    noise = rng.normal(0.0, std, size=(natoms, 3))
    return noise - noise.mean(axis=0, keepdims=True)


@dataclass(frozen=True)
class BatchBuilder:
    """Frames of one MicroBatch -> TrainItem; picklable, runs in loader workers. With ``build_graph`` False the
    batches come without their graph and with float64 geometry: the training process builds it on its device
    (data.graphs: device, foundation.train.device_feed)."""

    cutoff: float
    max_neighbours: int | None = None
    clean: bool = True
    noise_std: float = 0.0  # > 0: also build the noisy copy
    seed: int = 0
    sources: tuple[
        str, ...
    ] = ()  # the model's data sources: batches carry each frame's index in them
    build_graph: bool = True

    def __call__(self, key: MicroBatch, frames: Sequence[Frame]) -> TrainItem:
        clean = (
            collate_frames(
                frames,
                self.cutoff,
                self.max_neighbours,
                sources=self.sources,
                graph=self.build_graph,
            )
            if self.clean
            else None
        )
        noisy = None
        if self.noise_std > 0:
            noises = [
                position_noise(f.natoms, self.noise_std, seed=self.seed, epoch=key.epoch, index=i)
                for f, i in zip(frames, key.indices)
            ]
            shaken = [
                dataclasses.replace(f, positions=f.positions + n) for f, n in zip(frames, noises)
            ]
            noisy = collate_frames(
                shaken,
                self.cutoff,
                self.max_neighbours,
                sources=self.sources,
                graph=self.build_graph,
            )
            noisy.noise = torch.from_numpy(np.concatenate(noises)).to(noisy.positions.dtype)
        return TrainItem(clean, noisy, key.epoch, key.position)


class MapBatchDataset(Dataset):
    """Random-access frames (LMDB: `FrameDataset(path, split, "lmdb")`): dataset[MicroBatch] -> TrainItem."""

    def __init__(self, frames: Sequence[Frame], builder: BatchBuilder):
        self.frames = frames
        self.builder = builder

    def __getitem__(self, key: MicroBatch) -> TrainItem:  # type: ignore[override]
        return self.builder(key, [self.frames[i] for i in key.indices])


class StreamBatchDataset(IterableDataset):
    """WebDataset (sequential tar shards): iterates the sampler's plan; loader worker w builds micro-batches
    w, w + W, ... and the DataLoader interleaves them back into plan order. Shards are read in the plan's
    order with one decoded shard cached, so a shard-ordered plan reads each shard once per worker.
    `frames`: a dataset directory (its `split`, WebDataset shards) or a sequence of frames (a mixture)."""

    def __init__(
        self,
        frames: str | os.PathLike | Sequence[Frame],
        split: str,
        builder: BatchBuilder,
        sampler: AtomsBalancedSampler,
    ):
        self.frames = (
            FrameDataset(frames, split=split, container="wds")
            if isinstance(frames, (str, os.PathLike))
            else frames
        )
        self.builder, self.sampler = builder, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[TrainItem]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for n, key in enumerate(self.sampler):
            if n % workers == worker:
                yield self.builder(key, [self.frames[i] for i in key.indices])
