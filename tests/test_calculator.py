"""FoundationCalculator: ASE's view of any Potential (energy, free_energy, forces, stress in Voigt order)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read
from ase.optimize import BFGS
from ase.stress import voigt_6_to_full_3x3_stress

from foundation import FoundationCalculator, build_potential
from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from tests.conftest import FIXTURES

SMALL = ["backbone.hidden=8", "backbone.layers=2", "backbone.cutoff=4.0"]


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


def _potential(*overrides: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_potential("scalable-xs", [*SMALL, *overrides])


def test_matches_the_potential_on_a_real_frame():
    atoms = read(FIXTURES / "dft" / "alexandria-sample.xyz", index=3)
    atoms.calc = None
    potential = _potential().double()
    calc = FoundationCalculator(potential)
    atoms.calc = calc
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert forces.dtype == np.float64 and stress.shape == (6,)

    frame = Frame(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.asarray(atoms.cell[:]),
        pbc=atoms.pbc,
        frame_id="x",
        structure_id="x",
    )
    out = potential(collate_frames([frame], cutoff=potential.cutoff, dtype=torch.float64))
    assert energy == pytest.approx(float(out["energy"][0]), abs=1e-12)
    np.testing.assert_allclose(forces, out["forces"].detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(
        voigt_6_to_full_3x3_stress(stress), out["stress"][0].detach().numpy(), atol=1e-12
    )


def test_dtype_follows_the_potential():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    energies = {}
    for dtype in (torch.float32, torch.float64):
        atoms.calc = FoundationCalculator(_potential().to(dtype))
        energies[dtype] = atoms.get_potential_energy()
        assert atoms.calc.results["forces"].shape == (4, 3)
    assert energies[torch.float32] == pytest.approx(energies[torch.float64], rel=1e-5, abs=1e-5)
    assert (
        energies[torch.float32] != energies[torch.float64]
    )  # float32 rounding shows: the dtype really changed


def test_molecules_have_no_stress_and_relax():
    atoms = molecule("H2O")
    atoms.calc = FoundationCalculator(_potential().double())
    assert atoms.get_forces().shape == (3, 3)
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()
    start = atoms.get_potential_energy()
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=5)
    assert atoms.get_potential_energy() <= start


def test_missing_outputs_are_reported():
    atoms = bulk("Si")
    atoms.calc = FoundationCalculator(_potential("heads.stress=none"))
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="stress"):
        atoms.get_stress()


def _structures() -> list:
    """Periodic crystals of different sizes and a molecule (no stress), rattled so forces are not zero."""
    out = []
    for n, atoms in enumerate(
        [
            bulk("Cu", "fcc", a=3.6, cubic=True),
            bulk("Si", "diamond", a=5.43).repeat((2, 1, 1)),
            bulk("NaCl", "rocksalt", a=5.6),
            molecule("H2O"),
            bulk("Al", "fcc", a=4.05),
        ]
    ):
        atoms.rattle(0.05, seed=n)
        out.append(atoms)
    return out


def test_per_atom_energies_sum_to_the_energy():
    atoms = bulk("NaCl", "rocksalt", a=5.6).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=3)
    atoms.calc = FoundationCalculator(_potential().double())
    energies = atoms.get_potential_energies()
    assert (
        energies.shape == (len(atoms),)
        and "energies" in FoundationCalculator.implemented_properties
    )
    assert energies.sum() == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    assert np.ptp(energies) > 0  # per atom, not the mean spread evenly


def test_pymatgen_structure_gives_the_same_results_as_atoms():
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = _structures()[2]
    structure = AseAtomsAdaptor.get_structure(atoms)
    calc = FoundationCalculator(_potential().double())
    energy = calc.get_potential_energy(structure)
    forces, stress = calc.get_forces(structure), calc.get_stress(structure)
    reference = FoundationCalculator(_potential().double())
    atoms.calc = reference
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-10)
    np.testing.assert_allclose(stress, atoms.get_stress(), atol=1e-12)
    [batched] = calc.predict([structure])
    assert batched["energy"] == pytest.approx(energy, abs=1e-10)
    with pytest.raises(TypeError, match="pymatgen"):
        calc.predict(["not a structure"])


@pytest.mark.parametrize("max_atoms", [1, 20, 10_000])
def test_batched_predict_equals_one_structure_at_a_time(max_atoms):
    structures = _structures()
    calc = FoundationCalculator(_potential().double())
    batched = calc.predict(structures, max_atoms=max_atoms)
    assert len(batched) == len(structures)
    for atoms, result in zip(structures, batched):
        atoms.calc = FoundationCalculator(calc.potential)
        assert result["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        assert result["free_energy"] == result["energy"]
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), atol=1e-10)
        np.testing.assert_allclose(result["energies"], atoms.get_potential_energies(), atol=1e-10)
        assert result["energies"].sum() == pytest.approx(result["energy"], abs=1e-10)
        if atoms.pbc.all():
            np.testing.assert_allclose(result["stress"], atoms.get_stress(), atol=1e-12)
        else:
            assert "stress" not in result


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_graphs_are_built_there_and_results_match_the_cpu():
    structures = _structures()
    potential = _potential().double()
    frame = Frame(
        numbers=structures[1].numbers,
        positions=structures[1].positions,
        cell=np.asarray(structures[1].cell[:]),
        pbc=structures[1].pbc,
        frame_id="x",
        structure_id="x",
    )
    batch = collate_frames([frame], cutoff=potential.cutoff, dtype=torch.float64, device="cuda")
    assert batch.edge_index.is_cuda and batch.positions.is_cuda and batch.shifts.is_cuda
    on_cpu = FoundationCalculator(potential).predict(structures)
    on_gpu = FoundationCalculator(potential, device="cuda").predict(structures)
    for a, b in zip(on_cpu, on_gpu):
        assert b["energy"] == pytest.approx(a["energy"], abs=1e-9)
        np.testing.assert_allclose(b["forces"], a["forces"], atol=1e-9)
        np.testing.assert_allclose(b["energies"], a["energies"], atol=1e-9)
