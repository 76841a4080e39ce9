"""Seeds that ship with ASE and pymatgen, their decoration, and the perturbations that make frames non-equilibrium."""

from __future__ import annotations

import numpy as np
from ase.build import bulk
from foundation.data_prep.synth.perturb import rattle, repeat_to_min_atoms, strain
from foundation.data_prep.synth.seeds import (
    aflow_prototypes,
    decorate,
    min_distance_ratio,
    seed_catalogue,
)
from foundation.data_prep.synth.teachers import CHGNET_ELEMENTS, EMT_ELEMENTS


def test_catalogues_hold_elemental_crystals_and_prototypes():
    emt = seed_catalogue(EMT_ELEMENTS, metallic_only=True)
    names = {s.name for s in emt}
    assert {
        "bulk-Cu",
        "dcdft-Au",
        "aflow-A_cF4_225_a",
        "aflow-AB3_cP4_221_a_c",
        "aflow-AB_cP2_221_b_a",
    } <= names
    assert all(
        s.strukturbericht
        in {
            "A1",
            "A2",
            "A3",
            "A_h",
            "L1_2",
            "L1_0",
            "L1_1",
            "L1_3",
            "L6_0",
            "B2",
            "B11",
            "B19",
            "B32",
            "D0_3",
            "D0_19",
            "D0_22",
            "D0_a",
            "L2_1",
            "A15",
            "C15",
            "B_h",
        }
        for s in emt
        if s.decorate
    )
    everything = seed_catalogue(CHGNET_ELEMENTS, metallic_only=False)
    assert len(everything) > len(emt) + 200  # rock salt, perovskite, ... join for a general teacher
    assert all(len(s.atoms) <= 16 for s in aflow_prototypes(16))


def test_decoration_uses_distinct_teacher_elements_and_leaves_room_between_atoms():
    rng = np.random.default_rng(0)
    for seed in seed_catalogue(EMT_ELEMENTS, metallic_only=True):
        name, atoms = decorate(seed, EMT_ELEMENTS, rng)
        assert set(atoms.get_chemical_symbols()) <= set(EMT_ELEMENTS)
        if seed.decorate:
            assert len(set(atoms.get_chemical_symbols())) == len(
                set(seed.atoms.get_chemical_symbols())
            )
            assert name.startswith(seed.name + "-") and min_distance_ratio(atoms) >= 0.95 - 1e-9
        else:
            assert name == seed.name


def test_decorated_fcc_takes_the_volume_of_the_new_element():
    fcc = next(s for s in aflow_prototypes() if s.name == "aflow-A_cF4_225_a")
    _, atoms = decorate(fcc, ("Au",), np.random.default_rng(0))
    assert np.isclose(atoms.get_volume() / len(atoms), bulk("Au").get_volume(), rtol=1e-9)


def test_repeat_reaches_the_minimum_size_along_short_axes():
    assert len(repeat_to_min_atoms(bulk("Cu"), 8)) == 8
    assert len(repeat_to_min_atoms(bulk("Cu"), 1)) == 1
    slab_like = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab_like.set_cell(slab_like.cell * [1, 1, 3], scale_atoms=True)
    big = repeat_to_min_atoms(slab_like, 16)
    assert len(big) == 16 and np.allclose(big.cell.lengths()[:2], 2 * slab_like.cell.lengths()[:2])


def test_strain_is_symmetric_and_rattle_stays_apart():
    atoms = bulk("Cu", cubic=True).repeat(2)
    strained = strain(atoms, np.random.default_rng(1), 0.03)
    deformation = np.linalg.solve(atoms.cell[:], strained.cell[:])  # cell' = cell @ (1 + eps)
    assert (
        np.allclose(deformation, deformation.T) and 0 < np.abs(deformation - np.eye(3)).max() < 0.2
    )
    assert np.allclose(strained.get_scaled_positions(), atoms.get_scaled_positions())
    shaken = rattle(atoms, np.random.default_rng(2), (0.2, 0.2))
    displacement = shaken.positions - atoms.positions
    assert 0.1 < displacement.std() < 0.3 and min_distance_ratio(shaken) >= 0.7
