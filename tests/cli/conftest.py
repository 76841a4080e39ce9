"""A small prepared dataset of real DFT frames (Alexandria, tests/fixtures/dft) for the end-to-end sweep test."""

from __future__ import annotations

import hashlib
from pathlib import Path

import ase.io
import pytest

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.writer import write_dataset
from tests.conftest import FIXTURES


def write_real_dataset(out: Path, frames: int = 160, val_fraction: float = 0.2) -> Path:
    """The first `frames` Alexandria frames, split train/val by a hash of their structure id."""
    path = FIXTURES / "dft" / "alexandria-sample.xyz"
    splits: dict[str, list] = {"train": [], "val": []}
    for index, atoms in enumerate(ase.io.iread(path, index=f":{frames}")):
        sid = str(atoms.info["alexandria_id"])
        frame = frame_from_atoms(
            atoms, frame_id=f"{path.stem}:{index}", structure_id=sid, source=path.name
        )
        bucket = int(hashlib.sha256(sid.encode()).hexdigest(), 16) % 1000 / 1000
        splits["val" if bucket < val_fraction else "train"].append(frame)
    write_dataset(out, splits)
    return out


@pytest.fixture(scope="session")
def real_dataset(tmp_path_factory) -> Path:
    return write_real_dataset(tmp_path_factory.mktemp("sweep-data") / "alexandria")
