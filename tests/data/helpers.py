"""Frames for store tests: real DFT frames from tests/fixtures/dft and synthetic frames with every field."""

from __future__ import annotations

import ase.io
import numpy as np

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.schema import Frame
from tests.conftest import FIXTURES


def real_frames(per_file: int = 25) -> list[Frame]:
    """The first `per_file` frames of every extxyz sample in tests/fixtures/dft (MPtrj, Alexandria, MPF)."""
    frames = []
    for path in sorted((FIXTURES / "dft").glob("*.xyz")):
        for index, atoms in enumerate(ase.io.iread(path, index=f":{per_file}")):
            frames.append(
                frame_from_atoms(
                    atoms,
                    frame_id=f"{path.stem}:{index}",
                    structure_id=f"{path.stem}:{index}",
                    source=path.name,
                )
            )
    return frames


def full_frame(seed: int = 0, natoms: int = 5) -> Frame:
    """A synthetic frame with every optional field set, named properties of every kind included."""
    rng = np.random.default_rng(seed)
    return Frame(
        numbers=rng.integers(1, 90, natoms),
        positions=rng.normal(size=(natoms, 3)) * 3,
        cell=np.diag(rng.uniform(5, 9, 3)),
        pbc=np.array([True, True, False]),
        frame_id=f"synthetic-{seed}",
        structure_id=f"struct-{seed // 2}",
        source="unit-test",
        energy=float(rng.normal() * 10),
        forces=rng.normal(size=(natoms, 3)),
        stress=(lambda s: s + s.T)(rng.normal(size=(3, 3)) * 1e-3),
        magmoms=rng.normal(size=natoms),
        properties={
            "n": float(rng.uniform(1, 3)),
            "count": 3,
            "label": "oxide",
            "flag": True,
            "band_edges": rng.normal(size=2),
            "site_charges": rng.normal(size=natoms).astype(np.float32),
        },
    )


def minimal_frame(seed: int = 0) -> Frame:
    """A molecule frame with no optional field (no labels, no properties)."""
    rng = np.random.default_rng(seed)
    return Frame(
        numbers=np.array([8, 1, 1]),
        positions=rng.normal(size=(3, 3)),
        cell=np.zeros((3, 3)),
        pbc=np.zeros(3, bool),
        frame_id=f"molecule-{seed}",
        structure_id="water",
    )
