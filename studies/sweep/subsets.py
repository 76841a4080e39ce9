"""Nested training subsets for data-size sweeps, chosen by structure_id.

Every structure_id of the source's training split gets a rank from a salted hash; a subset of size D
takes whole structures in rank order until it holds at least D frames. Subsets of one seed are
therefore nested (each is a prefix of the same order, so a superset of every smaller one), and all
frames of a structure (a relaxation trajectory, an MD run) land on the same side of the cut.

Each subset is written as a derived dataset directory (its own shards and manifest, the training split
cut down, every other split (validation) copied whole), so any consumer of `data.path=DIR` trains on it
unchanged. The manifest keeps the source's statistics and element references (fitted once on the full
split) and records the subset's provenance under `extra.subset`. A subset already written with the same
provenance is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.data.dataset import open_dataset
from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.data.writer import write_dataset
from foundation.progress import progress_bar

TRAIN = "train"


def structure_order(structure_ids: Sequence[str], seed: int = 0) -> list[str]:
    """Unique structure ids ordered by sha256(seed:id): a fixed pseudo-random order, stable across runs."""
    unique = set(structure_ids)
    return sorted(unique, key=lambda sid: hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest())


def nested_selection(
    structure_ids: Sequence[str], sizes: Sequence[int], seed: int = 0
) -> dict[int, np.ndarray]:
    """For each target size D, the (sorted) frame indices of the smallest structure prefix with >= D frames."""
    ids = np.asarray(structure_ids, dtype=object)
    total = len(ids)
    for size in sizes:
        if not 0 < size <= total:
            raise ValueError(
                f"subset size {size} is outside 1..{total} (frames in the training split)"
            )
    rank = {sid: i for i, sid in enumerate(structure_order(ids.tolist(), seed))}
    frame_rank = np.array([rank[s] for s in ids])
    frames_per_rank = np.bincount(frame_rank, minlength=len(rank))
    cumulative = np.cumsum(frames_per_rank)
    out = {}
    for size in sizes:
        n_structures = int(np.searchsorted(cumulative, size)) + 1
        out[int(size)] = np.flatnonzero(frame_rank < n_structures)
    return out


@dataclasses.dataclass(frozen=True)
class Subset:
    """A written subset: where it is, how many frames, atoms and structures its training split holds."""

    path: str
    target: int
    frames: int
    atoms: int
    structures: int


def _manifest_digest(directory: Path) -> str:
    return hashlib.sha256((directory / MANIFEST_NAME).read_bytes()).hexdigest()


def write_nested_subsets(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    sizes: Sequence[int],
    *,
    seed: int = 0,
    shard_size: int = 10_000,
    progress: bool = True,
) -> list[Subset]:
    """Write one derived dataset per size under out_dir/D{size}; returns them smallest first."""
    source, out_dir = Path(source), Path(out_dir)
    manifest = Manifest.load(source)
    if TRAIN not in manifest.splits:
        raise KeyError(f"{source}: no {TRAIN!r} split to subset; it has {manifest.splits}")
    digest = _manifest_digest(source)
    targets = sorted(set(int(s) for s in sizes))
    existing = [_existing(out_dir / f"D{size}", digest, seed, size) for size in targets]
    if all(existing):
        return existing  # type: ignore[return-value]
    frames = list(
        progress_bar(
            open_dataset(source, split=TRAIN),
            desc=f"read {source.name}/{TRAIN}",
            unit="frame",
            enabled=progress,
        )
    )
    others = {
        split: list(open_dataset(source, split=split))
        for split in manifest.splits
        if split != TRAIN
    }
    selection = nested_selection([f.structure_id for f in frames], targets, seed)
    subsets = []
    for (size, index), done in progress_bar(
        list(zip(selection.items(), existing)),
        desc="write subsets",
        unit="subset",
        enabled=progress,
    ):
        if done is not None:
            subsets.append(done)
            continue
        chosen = [frames[i] for i in index]
        provenance = {
            "parent": str(source.resolve()),
            "parent_manifest_sha256": digest,
            "seed": seed,
            "target_frames": size,
            "frames": len(chosen),
            "atoms": int(sum(f.natoms for f in chosen)),
            "structures": len({f.structure_id for f in chosen}),
        }
        target = out_dir / f"D{size}"
        tmp = target.with_name(target.name + ".tmp")
        for stale in (target, tmp):
            if stale.exists():
                shutil.rmtree(stale)
        write_dataset(
            tmp,
            {TRAIN: chosen, **others},
            containers=manifest.containers,
            shard_size=shard_size,
            statistics=manifest.statistics,
            element_references=manifest.element_references,
            reader=manifest.reader,
            split_ratios=manifest.split_ratios,
            extra={**manifest.extra, "subset": provenance},
        )
        os.replace(tmp, target)
        subsets.append(_as_subset(target, provenance))
    return subsets


def _as_subset(path: Path, provenance: dict) -> Subset:
    return Subset(
        path=str(path),
        target=provenance["target_frames"],
        frames=provenance["frames"],
        atoms=provenance["atoms"],
        structures=provenance["structures"],
    )


def _existing(path: Path, digest: str, seed: int, size: int) -> Subset | None:
    """The subset already written at `path` from the same parent, seed and size, or None."""
    try:
        provenance = Manifest.load(path).extra.get("subset") or {}
    except (FileNotFoundError, ValueError):
        return None
    same = (
        provenance.get("parent_manifest_sha256") == digest
        and provenance.get("seed") == seed
        and provenance.get("target_frames") == size
    )
    return _as_subset(path, provenance) if same else None
