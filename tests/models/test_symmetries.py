"""Physical symmetries of every backbone: E invariant, F equivariant, extensive over supercells, smooth at the cutoff."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from foundation.calculator import FoundationCalculator


def _efs(potential, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    atoms = atoms.copy()
    atoms.calc = FoundationCalculator(potential)
    stress = atoms.get_stress(voigt=False) if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def test_rotation_translation_permutation(backbone, structure, rotation, make_potential):
    potential = make_potential(backbone)
    energy, forces, stress = _efs(potential, structure)
    assert np.abs(forces).max() > 1e-4

    moved = structure.copy()
    moved.set_cell(moved.cell[:] @ rotation.T)
    moved.positions = structure.positions @ rotation.T + np.array([0.3, -1.7, 2.9])
    e2, f2, s2 = _efs(potential, moved)
    assert e2 == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(f2, forces @ rotation.T, atol=1e-10)
    if stress is not None:
        np.testing.assert_allclose(s2, rotation @ stress @ rotation.T, atol=1e-10)

    order = np.random.default_rng(1).permutation(len(structure))
    e3, f3, _ = _efs(potential, structure[order])
    assert e3 == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(f3, forces[order], atol=1e-10)


@pytest.mark.parametrize("name", ["triclinic", "small_cell"])
def test_choice_of_unit_cell(backbone, name, make_potential, request):
    """Supercells give n times the energy, the same forces and stress; an equivalent cell changes nothing."""
    atoms = request.getfixturevalue(name)
    potential = make_potential(backbone)
    energy, forces, stress = _efs(potential, atoms)
    for reps in [(2, 1, 1), (2, 2, 1)]:
        n = int(np.prod(reps))
        e, f, s = _efs(potential, atoms.repeat(reps))
        assert e == pytest.approx(n * energy, abs=1e-9 * n)
        np.testing.assert_allclose(f, np.tile(forces, (n, 1)), atol=1e-10)
        np.testing.assert_allclose(s, stress, atol=1e-10)
    sheared = (
        atoms.copy()
    )  # the same lattice spanned by other vectors (unimodular integer transform), atoms wrapped
    sheared.set_cell(
        np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]]) @ atoms.cell[:], scale_atoms=False
    )
    sheared.wrap()
    e, f, s = _efs(potential, sheared)
    assert e == pytest.approx(energy, abs=1e-10)
    np.testing.assert_allclose(f, forces, atol=1e-10)
    np.testing.assert_allclose(s, stress, atol=1e-10)


def test_energy_and_forces_are_continuous_at_the_cutoff(backbone, molecule, make_potential):
    """An O atom approaches a real cluster along a line on which one atom k is its nearest: as O crosses k's cutoff
    sphere, E and F take the values they have just beyond it."""
    potential = make_potential(backbone)
    direction = np.array([0.48, -0.36, 0.8])
    k = int(
        np.argmax(molecule.positions @ direction)
    )  # every other atom lies farther from the line's end

    def probe(distance: float) -> tuple[float, np.ndarray]:
        atoms = molecule + Atoms("O", positions=[molecule.positions[k] + direction * distance])
        energy, forces, _ = _efs(potential, atoms)
        return energy, forces

    delta = 1e-6
    e_in, f_in = probe(potential.cutoff - delta)
    e_out, f_out = probe(potential.cutoff + delta)
    e_mid, _ = probe(potential.cutoff / 2)
    assert abs(e_mid - e_out) > 1e-6  # the O atom does interact inside the cutoff
    assert abs(e_in - e_out) < 1e-9
    np.testing.assert_allclose(f_in, f_out, atol=1e-5)
