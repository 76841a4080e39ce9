"""The dataset manifest (DIR/manifest.json): shards with counts, atoms per frame, checksums, splits,
elements, label statistics, element references, the reader and its options, and quarantine counts."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foundation.data.remote import RemoteError, TransferPolicy, is_url, join, read_bytes
from foundation.data.schema import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION
from foundation.files import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2  # 2: shards record their size in bytes
READABLE_MANIFEST_VERSIONS = (1, 2)
CONTAINERS = ("lmdb", "wds")


def encode_natoms(natoms: np.ndarray) -> str:
    """Atoms per frame as base64 of little-endian uint32 (compact enough for millions of frames)."""
    return base64.b64encode(np.asarray(natoms, dtype="<u4").tobytes()).decode()


def decode_natoms(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<u4").astype(np.int64)


@dataclass
class ShardInfo:
    """One shard file: which split and container it belongs to, its size and checksum."""

    path: str  # relative to the dataset directory
    split: str
    container: str
    num_frames: int
    num_atoms: int
    sha256: str
    natoms: str  # encode_natoms(atoms per frame), in record order
    size: int | None = None  # bytes; None only in manifests of version 1

    def atoms_per_frame(self) -> np.ndarray:
        return decode_natoms(self.natoms)

    def check(self) -> None:
        """Raise ValueError when the entry contradicts itself (counts, atoms, container)."""
        natoms = self.atoms_per_frame()
        if self.container not in CONTAINERS:
            raise ValueError(f"shard {self.path}: unknown container {self.container!r}")
        if (
            len(natoms) != self.num_frames
            or int(natoms.sum()) != self.num_atoms
            or (natoms < 1).any()
        ):
            raise ValueError(
                f"shard {self.path}: {self.num_frames} frames and {self.num_atoms} atoms, but atoms per "
                f"frame lists {len(natoms)} frames holding {int(natoms.sum())} atoms"
            )


@dataclass
class Manifest:
    """Everything a consumer needs to know about a prepared dataset without opening a record."""

    shards: list[ShardInfo]
    elements: list[int] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)
    element_references: dict[str, float] = field(default_factory=dict)
    reader: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, Any] = field(default_factory=lambda: {"total": 0, "by_reason": {}})
    dedup: dict[str, Any] = field(default_factory=dict)
    split_ratios: dict[str, float] = field(default_factory=dict)
    # the split's group rules and frames per group kind; the leakage audit (data_prep/leakage.py)
    split_groups: dict[str, Any] = field(default_factory=dict)
    leakage: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    manifest_version: int = MANIFEST_VERSION

    @property
    def splits(self) -> list[str]:
        return sorted({s.split for s in self.shards})

    @property
    def containers(self) -> list[str]:
        return [c for c in CONTAINERS if any(s.container == c for s in self.shards)]

    def shards_of(self, container: str, split: str | None = None) -> list[ShardInfo]:
        """Shards of one container (and split), in dataset order."""
        return [
            s
            for s in self.shards
            if s.container == container and (split is None or s.split == split)
        ]

    def atoms_per_frame(self, container: str, split: str | None = None) -> np.ndarray:
        """Atoms per frame for every frame of a split, in dataset order (samplers use this, not records)."""
        parts = [s.atoms_per_frame() for s in self.shards_of(container, split)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def num_frames(self, split: str | None = None) -> int:
        container = self.containers[0] if self.containers else "lmdb"
        return sum(s.num_frames for s in self.shards_of(container, split))

    def to_json(self) -> str:
        body = asdict(self)
        body["format"] = "foundation-dataset"
        body["splits"] = (
            {
                sp: {
                    "num_frames": self.num_frames(sp),
                    "num_atoms": int(self.atoms_per_frame(self.containers[0], sp).sum()),
                }
                for sp in self.splits
            }
            if self.containers
            else {}
        )
        return json.dumps(body, indent=1, sort_keys=True)

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / MANIFEST_NAME
        write_text_atomic(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike, transfer: TransferPolicy | None = None) -> Manifest:
        """The manifest of a dataset directory, or of a dataset at a URL (URL/manifest.json, see data/remote.py,
        read with `transfer`'s bounded waits)."""
        if is_url(directory):
            path = join(str(directory), MANIFEST_NAME)
            try:
                body = json.loads(read_bytes(path, transfer))
            except RemoteError as exc:
                raise FileNotFoundError(f"{exc}; is {directory} a prepared dataset?") from None
        else:
            path = Path(directory) / MANIFEST_NAME
            if not path.exists():
                raise FileNotFoundError(f"{path}: no manifest; is {directory} a prepared dataset?")
            body = json.loads(path.read_text())
        if body.get("format") != "foundation-dataset":
            raise ValueError(f"{path}: not a foundation dataset manifest")
        version = body.get("manifest_version")
        if (
            version not in READABLE_MANIFEST_VERSIONS
            or body.get("schema_version") not in READABLE_SCHEMA_VERSIONS
        ):
            raise ValueError(
                f"{path}: manifest version {version} / schema "
                f"{body.get('schema_version')} not readable by this build"
            )
        body.pop("format")
        body.pop("splits", None)
        try:
            body["shards"] = [ShardInfo(**s) for s in body["shards"]]
        except TypeError as exc:
            raise ValueError(f"{path}: malformed shard entry ({exc})") from None
        try:
            _check_shards(body["shards"], version)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return cls(**body)


def _check_shards(shards: list[ShardInfo], manifest_version: int) -> None:
    """Each entry consistent in itself, with a size (version >= 2), and each file listed once."""
    seen = set()
    for shard in shards:
        shard.check()
        if manifest_version >= 2 and not isinstance(shard.size, int):
            raise ValueError(f"shard {shard.path}: no size in bytes")
        if shard.path in seen:
            raise ValueError(f"shard {shard.path}: listed twice")
        seen.add(shard.path)
