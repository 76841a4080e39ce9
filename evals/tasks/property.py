"""Any prepared dataset whose records carry a named scalar property, with k-fold splits grouped by structure."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from foundation.evals.tasks.common import PropertyTask, kfold

from foundation.data.dataset import open_dataset
from foundation.data.manifest import MANIFEST_NAME
from foundation.files import sha256_file
from foundation.progress import progress_bar

# Targets computed from a frame's labels when its records carry no property of that name.
DERIVED = {
    "energy_per_atom": lambda frame: None if frame.energy is None else frame.energy / frame.natoms
}


def load_property_task(
    path: str | os.PathLike,
    property: str,
    *,
    split: str | None = None,
    num_folds: int = 5,
    fold_seed: int = 0,
    name: str | None = None,
    unit: str = "",
) -> PropertyTask:
    """Frames of a prepared dataset (one split, or all) with target `property` (a record property, or one of
    DERIVED); a frame without it, or with a non-scalar or non-finite value, is an error naming the dataset and
    the frame."""
    path = Path(path)
    frames = []
    for frame in progress_bar(
        open_dataset(path, split=split), desc=f"read {path.name}", unit="frame", leave=False
    ):
        if property not in frame.properties and property in DERIVED:
            frame.properties[property] = DERIVED[property](frame)
        if property not in frame.properties or frame.properties[property] is None:
            raise ValueError(
                f"{path}: frame {frame.frame_id} has no property {property!r} "
                f"(it has {sorted(frame.properties)})"
            )
        value = np.asarray(frame.properties[property])
        if (
            value.size != 1
            or not np.issubdtype(value.dtype, np.number)
            or not np.isfinite(value).all()
        ):
            raise ValueError(
                f"{path}: frame {frame.frame_id}: property {property!r} = {value!r} is not a finite scalar"
            )
        frame.properties = {property: float(value.reshape(-1)[0])}
        frames.append(frame)
    if not frames:
        raise ValueError(f"{path}: no frames{'' if split is None else f' in split {split!r}'}")
    folds = kfold(len(frames), num_folds, fold_seed, groups=[f.structure_id for f in frames])
    return PropertyTask(
        name=name or f"{path.name}_{property}",
        property=property,
        frames=frames,
        folds=folds,
        unit=unit,
        provenance={str(path / MANIFEST_NAME): sha256_file(path / MANIFEST_NAME)},
    )
