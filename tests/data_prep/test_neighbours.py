"""Closest pairs and neighbour counts against ASE's neighbour list (periodic, slab, molecule, skewed cells)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list
from foundation.data_prep.neighbours import closest_pair, count_neighbours

from tests.conftest import FIXTURES


def _systems():
    rng = np.random.default_rng(7)
    skewed = Atoms(
        "Si4",
        cell=[[3.0, 0, 0], [2.7, 1.5, 0], [0.4, 0.3, 2.5]],
        pbc=True,
        scaled_positions=rng.random((4, 3)),
    )
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((4, 4, 3))  # 192 atoms: the tree path
    big.rattle(0.05, seed=1)
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=6.0)
    slab.pbc = (True, True, False)
    wire = Atoms(
        "C3",
        positions=[[0, 0, 0], [1.3, 0, 0], [2.6, 0.1, 0]],
        cell=[3.9, 0, 0],
        pbc=(True, False, False),
    )
    unwrapped = bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)
    unwrapped.positions += [[13.0, -7.0, 20.0]] * len(unwrapped)
    return [bulk("Fe", "bcc", a=2.87), skewed, big, slab, molecule("CH3CH2OH"), wire, unwrapped]


@pytest.mark.parametrize(
    "atoms", _systems(), ids=["bcc", "skewed", "big", "slab", "molecule", "wire", "unwrapped"]
)
@pytest.mark.parametrize("cutoff", [0.9, 2.6, 5.0])
def test_matches_ase(atoms, cutoff):
    args = (atoms.positions, atoms.cell[:], atoms.pbc, cutoff)
    d = neighbor_list("d", atoms, cutoff)
    assert count_neighbours(*args) == len(d)
    expected = d.min() if len(d) else np.inf
    assert closest_pair(*args) == pytest.approx(expected, rel=1e-12)


def test_matches_ase_on_real_frames():
    import ase.io

    for atoms in ase.io.read(str(FIXTURES / "dft" / "mptrj-sample.xyz"), index=":"):
        d = neighbor_list("d", atoms, 4.0)
        assert count_neighbours(atoms.positions, atoms.cell[:], atoms.pbc, 4.0) == len(d)
        assert closest_pair(atoms.positions, atoms.cell[:], atoms.pbc, 4.0) == pytest.approx(
            d.min(), rel=1e-12
        )
