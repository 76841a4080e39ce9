"""A fine-tuning task: structures with one scalar target, and the (train, test) index pairs of its folds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foundation.data.schema import Frame


@dataclass
class PropertyTask:
    """Structures (Frames carrying `properties[property]`), their targets and folds as index arrays."""

    name: str
    property: str
    frames: list[Frame]
    folds: list[tuple[np.ndarray, np.ndarray]]
    unit: str = ""
    # what was read: file -> sha256, or a collection -> its version
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> np.ndarray:
        return np.array([float(f.properties[self.property]) for f in self.frames], dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "property": self.property,
            "unit": self.unit,
            "num_structures": len(self.frames),
            "num_folds": len(self.folds),
            "provenance": dict(self.provenance),
        }


def kfold(
    num_items: int, num_folds: int, seed: int, groups: Sequence[str] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled k-fold (train, test) index pairs; with `groups`, items of one group share a fold."""
    if num_folds < 2:
        raise ValueError(f"k-fold needs at least 2 folds, got {num_folds}")
    keys = list(dict.fromkeys(groups)) if groups is not None else list(range(num_items))
    if len(keys) < num_folds:
        raise ValueError(f"{len(keys)} groups cannot fill {num_folds} folds")
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of_key = {keys[k]: i % num_folds for i, k in enumerate(order)}
    fold = np.array([fold_of_key[groups[i] if groups is not None else i] for i in range(num_items)])
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(num_folds)]


def subset_indices(num_items: int, max_items: int | None, seed: int) -> np.ndarray:
    """A sorted seeded random subset of at most `max_items` indices (all of them when None)."""
    if max_items is None or max_items >= num_items:
        return np.arange(num_items)
    return np.sort(np.random.default_rng(seed).choice(num_items, size=max_items, replace=False))


SUBSET_SEED = 12345


def training_subset(train_idx: np.ndarray, size: int | None, fold: int, seed: int) -> np.ndarray:
    """`size` structures of a training fold (all when None or larger), sorted. Drawn per (fold, seed) and nested
    over sizes (the 100 of a seed lie inside its 300), the same for every arm of that (fold, seed, size), so
    arm differences are paired; the test fold is never subsampled."""
    if size is None or size >= len(train_idx):
        return np.sort(train_idx)
    order = np.random.default_rng([SUBSET_SEED, fold, seed]).permutation(np.sort(train_idx))
    return np.sort(order[:size])


def inner_split(
    train_idx: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(inner train, validation) carved from a training fold; the same for both variants of a seed."""
    perm = np.random.default_rng(seed).permutation(train_idx)
    n_val = max(1, int(round(val_fraction * len(perm))))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def restrict(task: PropertyTask, keep: np.ndarray) -> PropertyTask:
    """The task limited to structures `keep`, its folds re-indexed (a fold keeps its train/test roles)."""
    new_index = -np.ones(len(task.frames), dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    folds = [
        (new_index[tr][new_index[tr] >= 0], new_index[te][new_index[te] >= 0])
        for tr, te in task.folds
    ]
    return PropertyTask(
        name=task.name,
        property=task.property,
        frames=[task.frames[i] for i in keep],
        folds=folds,
        unit=task.unit,
        provenance=task.provenance,
    )
