"""The generator: deterministic for any worker count, valid frames, EMT labels that are its derivatives."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from ase.calculators.emt import EMT
from foundation.data_prep.synth.generate import SynthConfig, generate_frames

from foundation.data.ase_convert import atoms_from_frame

SMALL = dict(teacher="emt", seed=7, relax_probability=0.3, relax_steps=12, keep_every=3)


@pytest.fixture(scope="module")
def frames():
    return generate_frames(SynthConfig(frames=40, workers=1, **SMALL), progress=False)


def test_output_is_the_same_for_any_worker_count(frames):
    parallel = generate_frames(SynthConfig(frames=40, workers=2, **SMALL), progress=False)
    assert len(parallel) == len(frames) == 40
    assert all(a.same_as(b) for a, b in zip(frames, parallel))
    other_seed = generate_frames(
        SynthConfig(frames=5, workers=1, **{**SMALL, "seed": 8}), progress=False
    )
    assert not other_seed[0].same_as(frames[0])


def test_frames_are_valid_labelled_and_non_equilibrium(frames):
    for frame in frames:
        frame.validate()
        assert frame.energy is not None and frame.forces is not None and frame.stress is not None
        assert np.allclose(frame.stress, frame.stress.T)
        assert frame.source in ("synthetic-emt-rattle", "synthetic-emt-relax")
    assert len({f.frame_id for f in frames}) == len(frames)
    assert {f.source for f in frames} == {"synthetic-emt-rattle", "synthetic-emt-relax"}
    assert len({z for f in frames for z in f.numbers}) >= 4 and any(
        len(set(f.numbers)) > 1 for f in frames
    )
    assert min(f.natoms for f in frames) >= 4 and max(f.natoms for f in frames) >= 12
    forces = np.concatenate([np.linalg.norm(f.forces, axis=1) for f in frames])
    assert 0.1 < np.median(forces) < 5.0  # far from equilibrium, not absurd


def test_forces_and_stress_are_derivatives_of_the_teacher_energy(frames):
    frame = next(f for f in frames if f.source.endswith("rattle") and len(set(f.numbers)) > 1)
    atoms = atoms_from_frame(frame)
    atoms.calc = EMT()
    assert np.isclose(atoms.get_potential_energy(), frame.energy, atol=1e-9)
    h = 1e-4
    for atom, axis in [(0, 0), (1, 2), (frame.natoms - 1, 1)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = EMT()
            moved.positions[atom, axis] += sign * h
            energies.append(moved.get_potential_energy())
        assert np.isclose(
            -(energies[0] - energies[1]) / (2 * h), frame.forces[atom, axis], atol=1e-5
        )
    for i, j in [(0, 0), (1, 2)]:  # sigma_ij = (1/V) dE/d eps_ij for a symmetric strain
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * h / (2 if i != j else 1)
            moved = atoms.copy()
            moved.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
            moved.calc = EMT()
            energies.append(moved.get_potential_energy())
        derivative = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume()
        assert np.isclose(derivative, frame.stress[i, j], atol=1e-6)


def test_relaxation_frames_share_a_structure_and_lower_the_energy(frames):
    trajectories = {}
    for frame in frames:
        if frame.source.endswith("relax"):
            stem, step = frame.frame_id.rsplit("-relax-", 1)
            trajectories.setdefault(stem, []).append((int(step), frame))
    assert trajectories
    for stem, steps in trajectories.items():
        assert [s for s, _ in steps] == list(range(0, 3 * len(steps), 3))
        assert len({f.structure_id for _, f in steps}) == 1 and stem.startswith(
            steps[0][1].structure_id
        )
        if len(steps) > 1:
            assert steps[-1][1].energy < steps[0][1].energy


def test_frames_past_the_force_bound_are_left_out_and_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="foundation.data_prep.synth.generate"):
        kept = generate_frames(
            SynthConfig(frames=5, workers=1, max_force=0.5, **SMALL), progress=False
        )
    assert len(kept) == 5 and all(np.linalg.norm(f.forces, axis=1).max() <= 0.5 for f in kept)
    assert "left out" in caplog.text and "|F| above 0.5 eV/A" in caplog.text
