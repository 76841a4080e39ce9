"""Several prepared datasets in one run (`data.sources: [{path, weight, source}]`), and the data sources (frame
tags: data set + DFT settings) the energy head keeps apart.

Mixing: every epoch draws from dataset d frames worth weight_d / sum(weights) of the epoch's atoms (the atoms of
all the datasets' training splits): frames in that dataset's own shuffled order (shard order, then frames within
a shard, as for one dataset), cycling through fresh orders when its share exceeds its size. The datasets' draws
are then merged in a seeded random order that keeps each dataset's own order, so micro-batches mix the datasets
and each WebDataset dataset is still read shard after shard. The plan is a pure function of (seed, epoch): a
resumed run continues the same mixture. Validation reads every dataset's validation frames, unweighted.

Sources: `resolve_sources` gathers the source tags of the training frames from the manifests (frames_by_source,
element_references_by_source) with each source's fitted element references. With two or more, the model gets an
energy reference per source (heads.sources) and batches carry each frame's source index.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foundation.config import ConfigError
from foundation.data.dataset import FrameDataset
from foundation.data.manifest import Manifest
from foundation.data.schema import Frame
from foundation.train.config import DataConfig, SourceConfig
from foundation.train.datasets import BatchBuilder, MapBatchDataset, StreamBatchDataset
from foundation.train.loader import SplitLoader, truncate
from foundation.train.sampler import AtomsBalancedSampler, frame_order

log = logging.getLogger(__name__)


def datasets_of(data: DataConfig) -> list[SourceConfig]:
    """The run's datasets: `data.sources`, or the one `data.path` with weight 1."""
    return list(data.sources) or [SourceConfig(path=data.path)]


@dataclass
class SourceInfo:
    """The data sources of a run's training frames: names (sorted), frames and element references of each, and the
    default one (what a released model's energies refer to)."""

    frames: dict[str, int] = field(default_factory=dict)
    references: dict[str, dict[str, float]] = field(default_factory=dict)
    default: str | None = None

    @property
    def names(self) -> list[str]:
        return sorted(self.frames)

    @property
    def several(self) -> bool:
        return len(self.frames) > 1


def _dataset_sources(
    entry: SourceConfig, manifest: Manifest, data: DataConfig
) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """({source: training frames}, {source: element references}) of one dataset."""
    stats = manifest.statistics or {}
    counts = dict(stats.get("frames_by_source") or {})
    split = data.train_split
    if not counts and not manifest.shards_of(data.container, split):
        return {}, {}  # no training frames here: the loader says so
    if not counts:  # prepared before manifests counted sources: the first training frame's tag
        first = FrameDataset(
            entry.path,
            split=split,
            container=data.container,
            shard_url_base=None if data.sources else data.shard_url_base,
            transfer=data.transfer,
        )[0]
        counts = {first.source: manifest.num_frames(split)}
    if entry.source is not None:
        if len(counts) > 1:
            raise ConfigError(
                f"data.sources: {entry.path} holds frames of sources {sorted(counts)}; "
                f"'source: {entry.source}' can only tag a dataset of one source"
            )
        return {entry.source: sum(counts.values())}, {
            entry.source: dict(manifest.element_references)
        }
    by_source = stats.get("element_references_by_source") or {}
    if len(counts) == 1:
        return counts, {next(iter(counts)): dict(manifest.element_references)}
    return counts, {name: dict(by_source.get(name, {})) for name in counts}


def resolve_sources(data: DataConfig, model_sources: Sequence[str] = ()) -> SourceInfo:
    """The sources of the training frames of every dataset of the run; a clear ConfigError for an unknown
    `data.default_source`, or (with `model_sources`, a model whose sources are fixed) a source the model has no
    energy reference for."""
    info = SourceInfo()
    for entry in datasets_of(data):
        manifest = Manifest.load(entry.path, data.transfer)
        counts, references = _dataset_sources(entry, manifest, data)
        for name, count in counts.items():
            info.frames[name] = info.frames.get(name, 0) + count
            if name in info.references and info.references[name] != references[name]:
                log.warning(
                    "source %r: %s fits other element references than an earlier dataset; the first are "
                    "kept (the learned per-source offsets absorb the difference)",
                    name,
                    entry.path,
                )
            info.references.setdefault(name, references[name])
    if model_sources:
        missing = sorted(set(info.frames) - set(model_sources))
        if missing:
            raise ConfigError(
                f"the training frames carry sources {missing} that the model cannot represent: its "
                f"energy head has references for {list(model_sources)} only (heads.sources)"
            )
    if data.default_source is not None:
        if data.default_source not in info.frames:
            raise ConfigError(
                f"data.default_source: unknown source {data.default_source!r}; the training frames "
                f"carry {info.names}"
            )
        info.default = data.default_source
    elif info.frames:
        info.default = max(info.names, key=lambda name: info.frames[name])  # ties: the first name
    return info


class MixedFrames(Sequence):
    """Several datasets as one sequence (dataset d's frames at offsets[d]..offsets[d+1]-1); a dataset's `source`
    override retags its frames."""

    def __init__(self, datasets: Sequence[FrameDataset], sources: Sequence[str | None]):
        self.datasets, self.sources = list(datasets), list(sources)
        self.offsets = (
            np.concatenate([[0], np.cumsum([len(d) for d in self.datasets])])
            .astype(np.int64)
            .tolist()
        )

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> Frame:  # type: ignore[override]
        d = bisect.bisect_right(self.offsets, index) - 1
        frame = self.datasets[d][index - self.offsets[d]]
        if self.sources[d] is not None:
            frame.source = self.sources[d]
        return frame


class MixtureSampler(AtomsBalancedSampler):
    """An atoms-balanced plan over several datasets drawn by weight every epoch (see the module docstring)."""

    def __init__(
        self,
        natoms: Sequence[np.ndarray],
        shard_sizes: Sequence[Sequence[int]],
        weights: Sequence[float],
        labels: Sequence[str],
        max_atoms: int,
        **options,
    ):
        super().__init__(
            np.concatenate(natoms),
            [s for sizes in shard_sizes for s in sizes],
            max_atoms,
            **options,
        )
        self.parts = [np.asarray(n, dtype=np.int64) for n in natoms]
        self.part_sizes = [[int(s) for s in sizes] for sizes in shard_sizes]
        self.offsets = np.concatenate([[0], np.cumsum([len(n) for n in self.parts])]).astype(
            np.int64
        )
        self.weights, self.labels = np.asarray(weights, dtype=np.float64), list(labels)
        self._drawn: tuple[int, dict[str, int]] | None = None

    def _draw(self, d: int, epoch: int, target_atoms: float) -> np.ndarray:
        """Dataset d's frames (global indices) of this epoch: its shuffled orders, one after another, until their
        atoms reach `target_atoms`."""
        natoms, orders, atoms, cycle = self.parts[d], [], 0, 0
        while atoms < target_atoms:
            order = frame_order(
                self.part_sizes[d],
                epoch=epoch,
                seed=self.seed,
                shuffle=self.shuffle,
                stream=(d, cycle),
            )
            orders.append(order)
            atoms += int(natoms.sum())
            cycle += 1
        order = np.concatenate(orders) if orders else np.zeros(0, np.int64)
        take = int(np.searchsorted(np.cumsum(natoms[order]), target_atoms)) + 1
        return self.offsets[d] + order[: min(take, len(order))]

    def order(self, epoch: int) -> np.ndarray:
        total = float(sum(int(n.sum()) for n in self.parts))
        shares = self.weights / self.weights.sum()
        draws = [self._draw(d, epoch, total * share) for d, share in enumerate(shares)]
        self._drawn = (epoch, {label: len(draw) for label, draw in zip(self.labels, draws)})
        rng = np.random.default_rng([self.seed, epoch, 0x313C])
        labels = np.repeat(np.arange(len(draws)), [len(draw) for draw in draws])
        rng.shuffle(labels)
        merged = np.empty(len(labels), dtype=np.int64)
        for d, draw in enumerate(draws):
            merged[labels == d] = draw  # each dataset keeps its own order
        return merged

    def drawn(self, epoch: int) -> dict[str, int]:
        """Frames drawn from each dataset (by label) for `epoch`."""
        if self._drawn is None or self._drawn[0] != epoch:
            self.order(epoch)
        return dict(self._drawn[1])


def labels_of(entries: Sequence[SourceConfig]) -> list[str]:
    """A short unique label per dataset (its directory name; the path when names repeat)."""
    names = [Path(e.path).name for e in entries]
    return [Path(e.path).as_posix() if names.count(n) > 1 else n for e, n in zip(entries, names)]


def build_mixture_loader(
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
    """The loader of one split of a mixture: training plans draw by weight (MixtureSampler); validation reads
    every dataset's frames of the split once (the first `val_max_frames` of them in dataset order)."""
    entries = datasets_of(data)
    chosen, natoms, sizes = [], [], []
    for entry in entries:
        manifest = Manifest.load(entry.path, data.transfer)
        shards = manifest.shards_of(data.container, split)
        if not shards:
            if train:
                raise ValueError(f"{entry.path}: no {data.container!r} shards for split {split!r}")
            continue
        chosen.append(entry)
        natoms.append(manifest.atoms_per_frame(data.container, split))
        sizes.append([s.num_frames for s in shards])
    if not chosen:
        raise ValueError(
            f"data.sources: no dataset has {data.container!r} shards for split {split!r}"
        )
    frames = MixedFrames(
        [
            FrameDataset(e.path, split=split, container=data.container, transfer=data.transfer)
            for e in chosen
        ],
        [e.source for e in chosen],
    )
    if train:
        sampler: AtomsBalancedSampler = MixtureSampler(
            natoms,
            sizes,
            [e.weight for e in chosen],
            labels_of(chosen),
            data.max_atoms,
            rank=rank,
            world_size=world_size,
            grad_accum=grad_accum,
            seed=seed,
            shuffle=data.shuffle,
            drop_last=True,
        )
        if not sampler.rank_batches(0):
            raise ValueError(
                f"data.sources split {split!r}: too few frames for world_size * grad_accum = "
                f"{world_size * grad_accum} micro-batches of {data.max_atoms} atoms"
            )
    else:
        flat, flat_sizes = np.concatenate(natoms), [s for part in sizes for s in part]
        if data.val_max_frames is not None:
            flat, flat_sizes = truncate(flat, flat_sizes, data.val_max_frames)
        sampler = AtomsBalancedSampler(
            flat,
            flat_sizes,
            data.val_max_atoms or data.max_atoms,
            rank=rank,
            world_size=world_size,
            seed=seed,
            shuffle="none",
            drop_last=False,
        )
    dataset = (
        StreamBatchDataset(frames, split, builder, sampler)
        if data.container == "wds"
        else MapBatchDataset(frames, builder)
    )
    return SplitLoader(sampler, dataset, data.num_workers, data.prefetch_factor, pin_memory)
