"""Fixtures for the model tests: tiny float64 potentials of every backbone and real DFT structures (tests/fixtures)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import read
from ase.neighborlist import neighbor_list

from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.models import BACKBONES, build_potential
from tests.conftest import FIXTURES

CUTOFF = 4.0
EXTRA = {
    "mpnn": {"edge_hidden": 4},
    "torchmd_et": {"num_heads": 2},
    "painn": {"norm": "layer"},
}  # painn as the presets


def tiny_config(name: str, **heads) -> dict:
    """A small but complete model config (width 8, 2 layers, 4 A cutoff)."""
    backbone = {
        "name": name,
        "hidden": 8,
        "layers": 2,
        "cutoff": CUTOFF,
        "num_radial": 8,
        **EXTRA.get(name, {}),
    }
    return {"backbone": backbone, "heads": heads}


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


@pytest.fixture(params=sorted(BACKBONES))
def backbone(request) -> str:
    return request.param


@pytest.fixture
def make_potential() -> Callable[..., torch.nn.Module]:
    """make_potential(name, **heads) -> a seeded float64 Potential in eval mode."""

    def make(name: str, seed: int = 0, **heads) -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_potential(tiny_config(name, **heads)).double().eval()

    return make


@pytest.fixture
def predict() -> Callable[..., dict]:
    """predict(potential, [atoms, ...], compute=None) -> the potential's outputs for one batch."""

    def run(potential, atoms_list: list[Atoms], compute=None) -> dict:
        frames = [
            Frame(
                numbers=a.numbers,
                positions=a.positions,
                cell=np.asarray(a.cell[:]),
                pbc=a.pbc,
                frame_id=str(k),
                structure_id=str(k),
            )
            for k, a in enumerate(atoms_list)
        ]
        batch = collate_frames(frames, cutoff=potential.cutoff, dtype=potential.geometry_dtype)
        return potential(batch, compute=compute)

    return run


def _frame(name: str, index: int) -> Atoms:
    atoms = read(FIXTURES / "dft" / name, index=index)
    atoms.calc = None
    return atoms


@pytest.fixture(scope="session")
def triclinic() -> Atoms:
    """As4Ta2, a fully triclinic MPtrj cell (angles 72, 78, 71 degrees; frame 194 of mptrj-random-1k.xyz)."""
    atoms = _frame("mptrj-sample.xyz", 59)
    assert atoms.info["mptrj_snapshot_id"] == "mp-12561-1-3"
    assert len(atoms) == 6 and np.all(np.abs(atoms.cell.angles() - 90) > 10)
    return atoms


@pytest.fixture(scope="session")
def small_cell() -> Atoms:
    """LiHF2, a 4-atom MD frame (MPF) whose lattice vectors (2.5, 2.5, 3.2 A) are all shorter than the cutoff."""
    atoms = _frame("mpf-alkali-TP-sample.xyz", 7)
    assert len(atoms) == 4 and atoms.cell.lengths().max() < CUTOFF
    return atoms


@pytest.fixture(scope="session")
def molecule(triclinic) -> Atoms:
    """A non-periodic cluster cut from the triclinic crystal: atom 0 and its four nearest neighbours."""
    i, j, d, vec = neighbor_list("ijdD", triclinic, 4.0)
    nearest = np.argsort(d[i == 0])[:4]
    positions = np.vstack([triclinic.positions[0], triclinic.positions[0] + vec[i == 0][nearest]])
    numbers = np.concatenate([[triclinic.numbers[0]], triclinic.numbers[j[i == 0][nearest]]])
    return Atoms(numbers=numbers, positions=positions, pbc=False)


@pytest.fixture(params=["triclinic", "small_cell", "molecule"])
def structure(request) -> Atoms:
    return request.getfixturevalue(request.param).copy()


@pytest.fixture(scope="session")
def rotation() -> np.ndarray:
    """A random proper rotation matrix (det +1); rotate row vectors with x @ R.T."""
    q, r = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q
