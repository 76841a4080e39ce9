"""foundation.export: every backbone scripts, and the TorchScript module gives the eager Potential's energy, forces
and stress (periodic crystal, small skewed cell, slab, molecule); its neighbour list is ASE's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from foundation import FoundationCalculator, build_potential
from foundation.export import ExportError, neighbour_list, script_potential
from foundation.models import BACKBONES

EXTRA = {"mpnn": ["backbone.edge_hidden=4"], "torchmd_et": ["backbone.num_heads=2"]}


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


def _structures() -> dict[str, Atoms]:
    crystal = bulk("NaCl", "rocksalt", a=5.6).repeat((2, 1, 1))
    skewed = Atoms(
        "CuO",
        scaled_positions=[[0.1, 0.2, 0.3], [0.6, 0.55, 0.4]],
        cell=[[2.9, 0.0, 0.0], [1.2, 2.7, 0.0], [0.5, 0.8, 3.1]],
        pbc=True,
    )
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=4.0)
    mol = molecule("H2O")
    mol.positions += 7.5  # far from the (zero) cell's origin: nothing may depend on it
    structures = {"crystal": crystal, "skewed": skewed, "slab": slab, "molecule": mol}
    for k, atoms in enumerate(structures.values()):
        atoms.rattle(0.05, seed=k)
    return structures


def _inputs(atoms: Atoms) -> tuple[torch.Tensor, ...]:
    return (
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.positions),
        torch.tensor(np.asarray(atoms.cell[:])),
        torch.tensor(atoms.pbc),
    )


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_scripts_and_matches_the_eager_potential(name):
    torch.manual_seed(0)
    config = "scalable-xs" if name == "painn" else name
    potential = build_potential(
        config,
        [
            "backbone.hidden=8",
            "backbone.layers=2",
            "backbone.cutoff=4.0",
            "backbone.num_radial=8",
            *EXTRA.get(name, []),
        ],
    ).double()
    potential.set_normalization(
        {"Na": -1.0, "Cl": -2.0, "Cu": -3.0, "O": -4.0, "H": -0.5}, scale=0.7, shift=0.1
    )
    exported = script_potential(potential)
    calc = FoundationCalculator(potential)
    for label, atoms in _structures().items():
        atoms.calc = calc
        out = exported(*_inputs(atoms))
        assert float(out["energy"]) == pytest.approx(atoms.get_potential_energy(), abs=1e-10), label
        assert float(out["energies"].sum()) == pytest.approx(float(out["energy"]), abs=1e-10)
        np.testing.assert_allclose(
            out["forces"].numpy(), atoms.get_forces(), atol=1e-10, err_msg=label
        )
        if atoms.pbc.all():
            np.testing.assert_allclose(
                out["stress"].numpy(), atoms.get_stress(voigt=False), atol=1e-10, err_msg=label
            )
        else:
            assert not out["stress"].any()
        assert (
            np.abs(atoms.get_forces()).max() > 1e-6
        )  # the comparison (atol 1e-10) is not between zeros


@pytest.mark.parametrize("label", ["crystal", "skewed", "slab", "molecule"])
def test_neighbour_list_is_ases(label):
    atoms = _structures()[label]
    cutoff = 4.5
    edge_index, shifts = neighbour_list(
        *[torch.as_tensor(x) for x in (atoms.positions, np.asarray(atoms.cell[:]), atoms.pbc)],
        cutoff=cutoff,
    )
    i, j, s = neighbor_list("ijS", atoms, cutoff)
    ours = sorted(
        zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shifts.long().tolist()))
    )
    assert ours == sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))
    assert len(ours) > len(atoms)


def test_coincident_atoms_are_neighbours_but_no_atom_is_its_own():
    atoms = Atoms("Cu2", positions=[[0.5, 0.5, 0.5]] * 2, cell=np.eye(3) * 3.0, pbc=True)
    edge_index, shifts = neighbour_list(
        *[torch.as_tensor(x) for x in (atoms.positions, np.asarray(atoms.cell[:]), atoms.pbc)],
        cutoff=3.5,
    )
    i, j, s = neighbor_list("ijS", atoms, 3.5)
    ours = sorted(
        zip(edge_index[0].tolist(), edge_index[1].tolist(), map(tuple, shifts.long().tolist()))
    )
    assert ours == sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))
    assert (0, 1, (0, 0, 0)) in ours and (0, 0, (0, 0, 0)) not in ours


def test_a_small_search_block_gives_the_same_edges():
    atoms = _structures()["crystal"]
    args = [torch.as_tensor(x) for x in (atoms.positions, np.asarray(atoms.cell[:]), atoms.pbc)]
    edges, shifts = neighbour_list(*args, cutoff=5.0)
    small_edges, small_shifts = neighbour_list(*args, cutoff=5.0, max_pairs=7)
    assert torch.equal(edges, small_edges) and torch.equal(shifts, small_shifts)


def test_refuses_a_neighbour_cap_and_a_potential_without_energy():
    with pytest.raises(ExportError, match="max_neighbours"):
        script_potential(
            build_potential("schnet", ["backbone.hidden=8", "backbone.max_neighbours=8"])
        )
    no_energy = build_potential(
        "schnet",
        ["backbone.hidden=8", "heads.energy=false", "heads.forces=direct", "heads.stress=none"],
    )
    with pytest.raises(ExportError, match="no energy head"):
        script_potential(no_energy)


def test_refuses_to_run_without_autograd():
    exported = script_potential(
        build_potential("schnet", ["backbone.hidden=8", "backbone.layers=1"])
    )
    with torch.no_grad(), pytest.raises(torch.jit.Error, match="autograd"):
        exported(*_inputs(_structures()["crystal"]))


def test_a_multi_source_potential_exports_its_default_source():
    """The scripted model predicts the default source's energies; forces are those of every source."""
    config = {
        "backbone": {
            "name": "schnet",
            "hidden": 16,
            "num_filters": 16,
            "layers": 2,
            "cutoff": 4.0,
            "num_radial": 8,
            "max_neighbours": None,
        },
        "heads": {"sources": ["A", "B"], "default_source": "B"},
    }
    potential = build_potential(config).double().eval()
    potential.set_normalization(source_references={"A": {"Cu": -3.0}, "B": {"Cu": -4.0}})
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    scripted = script_potential(potential)
    out = scripted(
        torch.from_numpy(atoms.numbers),
        torch.from_numpy(atoms.positions),
        torch.from_numpy(atoms.cell[:]),
        torch.from_numpy(atoms.pbc),
    )
    for source, shift in (("B", 0.0), ("A", 1.0)):  # eV per Cu atom: A sits 1 eV above B
        calc = FoundationCalculator(potential, source=source)
        assert float(out["energy"]) == pytest.approx(
            calc.get_potential_energy(atoms) - shift * len(atoms), abs=1e-8
        )
        np.testing.assert_allclose(out["forces"].numpy(), calc.get_forces(atoms), atol=1e-10)
