"""Write frames of one split into shards of one or both containers and describe them as ShardInfo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.data.lmdb_store import write_lmdb_shard
from foundation.data.manifest import CONTAINERS, Manifest, ShardInfo, encode_natoms
from foundation.data.schema import Frame
from foundation.data.wds_store import write_wds_shard
from foundation.files import sha256_file

_WRITERS = {"lmdb": write_lmdb_shard, "wds": write_wds_shard}
_SUFFIX = {"lmdb": "lmdb", "wds": "tar"}


def shard_name(container: str, split: str, index: int, prefix: str = "") -> str:
    """Relative path of a shard: CONTAINER/[PREFIX-]SPLIT-NNNNN.EXT."""
    stem = f"{prefix}-{split}" if prefix else split
    return f"{container}/{stem}-{index:05d}.{_SUFFIX[container]}"


def write_shard(
    directory: str | os.PathLike, relpath: str, container: str, split: str, frames: Sequence[Frame]
) -> ShardInfo:
    """Write one shard file and return its manifest entry (count, atoms per frame, sha256)."""
    if container not in _WRITERS:
        raise ValueError(f"unknown container {container!r}; choose from {CONTAINERS}")
    path = Path(directory) / relpath
    _WRITERS[container](path, frames)
    natoms = np.array([f.natoms for f in frames], dtype=np.int64)
    return ShardInfo(
        path=relpath,
        split=split,
        container=container,
        num_frames=len(frames),
        num_atoms=int(natoms.sum()),
        sha256=sha256_file(path),
        natoms=encode_natoms(natoms),
        size=path.stat().st_size,
    )


def write_split(
    directory: str | os.PathLike,
    split: str,
    frames: Sequence[Frame],
    *,
    containers: Sequence[str] = ("lmdb",),
    shard_size: int = 10_000,
    prefix: str = "",
) -> list[ShardInfo]:
    """Cut a split's frames into shards of `shard_size` and write them to every requested container."""
    shards = []
    for container in containers:
        for index, start in enumerate(range(0, len(frames), shard_size)):
            relpath = shard_name(container, split, index, prefix)
            shards.append(
                write_shard(
                    directory, relpath, container, split, frames[start : start + shard_size]
                )
            )
    return shards


def write_dataset(
    directory: str | os.PathLike,
    splits: dict[str, Sequence[Frame]],
    *,
    containers: Sequence[str] = ("lmdb",),
    shard_size: int = 10_000,
    **manifest_fields,
) -> Manifest:
    """Write a whole dataset (splits -> shards -> manifest). data_prep adds statistics and quarantine."""
    shards = [
        s
        for split, frames in splits.items()
        for s in write_split(directory, split, frames, containers=containers, shard_size=shard_size)
    ]
    elements = sorted(
        {int(z) for frames in splits.values() for f in frames for z in np.unique(f.numbers)}
    )
    manifest = Manifest(shards=shards, elements=elements, **manifest_fields)
    manifest.save(directory)
    return manifest
