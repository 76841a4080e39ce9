"""DataLoaders for training and validation: a sampler plan, a batch dataset, workers that build graphs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from foundation.data.dataset import FrameDataset
from foundation.data.manifest import Manifest
from foundation.processes import worker_context
from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder, MapBatchDataset, StreamBatchDataset, TrainItem
from foundation.train.sampler import AtomsBalancedSampler


def _keep(item: TrainItem) -> TrainItem:
    return item


@dataclass
class SplitLoader:
    """A split's sampler and batch dataset; `loader(epoch, start)` iterates one epoch from a position, or (`onward`)
    every epoch from there on: a training run's one DataLoader, whose workers start once (whatever the start
    method) instead of once per epoch."""

    sampler: AtomsBalancedSampler
    dataset: MapBatchDataset | StreamBatchDataset
    num_workers: int
    prefetch_factor: int
    pin_memory: bool

    def loader(self, epoch: int, start: int = 0, *, onward: bool = False) -> DataLoader:
        self.sampler.set_epoch(epoch, start, onward=onward)
        options = dict(
            batch_size=None,
            collate_fn=_keep,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
        )
        if self.num_workers > 0:
            options.update(
                prefetch_factor=self.prefetch_factor,
                multiprocessing_context=worker_context(["foundation.train.datasets"]),
            )
        if isinstance(self.dataset, StreamBatchDataset):
            return DataLoader(self.dataset, **options)
        return DataLoader(self.dataset, sampler=self.sampler, **options)

    def __len__(self) -> int:
        return len(self.sampler.rank_batches(self.sampler.epoch))


def build_split_loader(
    data: DataConfig,
    split: str,
    builder: BatchBuilder,
    *,
    rank: int,
    world_size: int,
    grad_accum: int,
    seed: int,
    train: bool,
    pin_memory: bool = False,
) -> SplitLoader:
    """The loader of one split: training plans are shuffled and cut evenly across ranks; validation plans
    keep every frame (the first `val_max_frames` in dataset order) and ranks may differ by one micro-batch."""
    manifest = Manifest.load(data.path, data.transfer)
    shards = manifest.shards_of(data.container, split)
    if not shards:
        raise ValueError(
            f"{data.path}: no {data.container!r} shards for split {split!r} "
            f"(splits {manifest.splits}, containers {manifest.containers})"
        )
    natoms = manifest.atoms_per_frame(data.container, split)
    sizes = [s.num_frames for s in shards]
    if not train and data.val_max_frames is not None:
        natoms, sizes = truncate(natoms, sizes, data.val_max_frames)
    max_atoms = data.max_atoms if train else (data.val_max_atoms or data.max_atoms)
    sampler = AtomsBalancedSampler(
        natoms,
        sizes,
        max_atoms,
        rank=rank,
        world_size=world_size,
        grad_accum=grad_accum if train else 1,
        seed=seed,
        shuffle=data.shuffle if train else "none",
        drop_last=train,
    )
    if train and not sampler.rank_batches(0):
        raise ValueError(
            f"{data.path} split {split!r}: {len(natoms)} frames make fewer micro-batches of "
            f"{max_atoms} atoms than world_size * grad_accum = {world_size * grad_accum}"
        )
    if data.container == "wds":
        frames = FrameDataset(
            data.path,
            split=split,
            container="wds",
            shard_url_base=data.shard_url_base,
            transfer=data.transfer,
        )
        dataset = StreamBatchDataset(frames, split, builder, sampler)
    else:
        dataset = MapBatchDataset(FrameDataset(data.path, split=split, container="lmdb"), builder)
    return SplitLoader(sampler, dataset, data.num_workers, data.prefetch_factor, pin_memory)


def truncate(natoms, sizes, limit: int):
    """The first `limit` frames: their atom counts and the shard sizes that hold them."""
    natoms = natoms[:limit]
    kept, left = [], len(natoms)
    for size in sizes:
        kept.append(min(size, left))
        left -= kept[-1]
    return natoms, [k for k in kept if k > 0]


def model_dtype_batch(batch, device: torch.device, dtype: torch.dtype):
    """Move a batch to `device` with its geometry in `dtype` (the model's geometry dtype); labels stay float32."""
    moved = batch.to(device)
    if dtype != moved.positions.dtype:
        moved.positions, moved.cell, moved.shifts = (
            t.to(dtype) for t in (moved.positions, moved.cell, moved.shifts)
        )
    return moved
