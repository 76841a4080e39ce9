"""Validation restricted to chosen data sources (`data.validation_sources`).

The validation frames whose source tag matches one of the patterns (fnmatch, e.g. `MPtrj`, `Alexandria`,
`Internal`) make the validation loss: the `val` record's loss and MAEs, the best checkpoint, early stopping and
the plateau schedule. The others (e.g. teacher-labelled frames, `synthetic-*`) are validated too and reported
beside them under `excluded/` (`excluded/forces_mae`, ...), never mixed in. A pre-training set of DFT and
teacher frames thus selects and stops on DFT frames alone.

With `data.fit_check_frames` the same errors are measured on training frames (`fit/...`): a model whose error on
frames it trains on is as large as on the validation frames is underfitting, and more data will not help it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import numpy as np

from foundation.config import ConfigError
from foundation.data.schema import Frame
from foundation.train.datasets import MapBatchDataset, StreamBatchDataset
from foundation.train.loader import SplitLoader
from foundation.train.sampler import AtomsBalancedSampler

EXCLUDED = (
    "excluded/"  # prefix of the metrics of the validation frames left out of the validation loss
)
FIT = "fit/"  # prefix of the metrics of the training frames evaluated beside the validation (data.fit_check_frames)


def source_matches(source: str, patterns: Sequence[str]) -> bool:
    """Whether a frame's source tag matches any of the patterns (case-sensitive fnmatch)."""
    return any(fnmatch.fnmatchcase(source, pattern) for pattern in patterns)


class SelectedFrames(Sequence):
    """The frames of `frames` at `indices`, in that order."""

    def __init__(self, frames: Sequence[Frame], indices: np.ndarray):
        self.frames, self.indices = frames, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Frame:  # type: ignore[override]
        return self.frames[int(self.indices[index])]


def _subset_loader(
    loader: SplitLoader, frames: Sequence[Frame], indices: np.ndarray
) -> SplitLoader:
    old = loader.sampler
    sampler = AtomsBalancedSampler(
        old.natoms[indices],
        [len(indices)],
        old.max_atoms,
        rank=old.rank,
        world_size=old.world_size,
        seed=old.seed,
        shuffle="none",
        drop_last=False,
    )
    chosen = SelectedFrames(frames, indices)
    builder = loader.dataset.builder
    dataset: Any = (
        StreamBatchDataset(chosen, "", builder, sampler)
        if isinstance(loader.dataset, StreamBatchDataset)
        else MapBatchDataset(chosen, builder)
    )
    return SplitLoader(
        sampler, dataset, loader.num_workers, loader.prefetch_factor, loader.pin_memory
    )


def split_by_source(
    loader: SplitLoader, patterns: Sequence[str], where: str = "validation"
) -> tuple[SplitLoader, SplitLoader | None]:
    """(the loader of the frames whose source matches `patterns`, the loader of the others or None when there are
    none). No patterns: the loader unchanged and None. Reads each frame once for its source tag; a split with no
    matching frame is an error that names the sources it has."""
    if not patterns:
        return loader, None
    frames = loader.dataset.frames
    sources = [frames[i].source for i in range(len(loader.sampler.natoms))]
    keep = np.array([source_matches(s, patterns) for s in sources], dtype=bool)
    if not keep.any():
        raise ConfigError(
            f"data.validation_sources {list(patterns)}: no {where} frame has a matching source; the "
            f"{where} frames carry {sorted(set(sources))}"
        )
    selected = _subset_loader(loader, frames, np.flatnonzero(keep))
    return selected, (
        _subset_loader(loader, frames, np.flatnonzero(~keep)) if not keep.all() else None
    )


def fit_check_loader(loader: SplitLoader, patterns: Sequence[str], count: int) -> SplitLoader:
    """The training frames of the fit check: `count` frames evenly spaced over the split (read once each for its
    source tag, so a split of any size costs `count` reads), those whose source matches `patterns` (all when
    none). None of them matching is an error that names the sources they carry."""
    frames = loader.dataset.frames
    total = len(loader.sampler.natoms)
    spaced = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(np.int64))
    sources = [frames[int(i)].source for i in spaced]
    keep = spaced[[not patterns or source_matches(s, patterns) for s in sources]]
    if not len(keep):
        raise ConfigError(
            f"data.fit_check_frames: none of {len(spaced)} training frames has a source matching "
            f"data.validation_sources {list(patterns)}; they carry {sorted(set(sources))}"
        )
    return _subset_loader(loader, frames, keep)
