"""Teacher choice and labels: EMT always, CHGNet 0.3.0 only where the optional extra is installed."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from foundation.data_prep.synth import teachers
from foundation.data_prep.synth.generate import SynthConfig, generate_frames
from foundation.data_prep.synth.teachers import make_calculator, resolve_teacher, snapshot

from foundation.data.ase_convert import frame_from_atoms


def test_auto_falls_back_to_emt_without_chgnet(monkeypatch):
    monkeypatch.setattr(teachers, "chgnet_available", lambda: False)
    assert resolve_teacher("auto").name == "emt"
    with pytest.raises(ValueError, match="foundation\\[teacher\\]"):
        resolve_teacher("chgnet")
    with pytest.raises(ValueError, match="unknown teacher"):
        resolve_teacher("lj")


NEEDS_CHGNET = pytest.mark.skipif(
    not teachers.chgnet_available(), reason="needs the optional extra `teacher` (chgnet)"
)


@pytest.mark.parametrize("name", ["emt", pytest.param("chgnet", marks=NEEDS_CHGNET)])
def test_a_compressed_cell_has_negative_diagonal_stress(name):
    teacher = resolve_teacher(name)
    for scale, sign in [(0.95, -1), (1.05, 1)]:
        atoms = bulk("Cu", cubic=True)
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        atoms.calc = make_calculator(teacher)
        frame = frame_from_atoms(
            snapshot(atoms), frame_id="f", structure_id="s", source=teacher.source
        )
        frame.validate()
        assert np.all(sign * np.diag(frame.stress) > 0)
        assert np.allclose(frame.forces, 0, atol=1e-3)  # fcc sites: forces vanish by symmetry


@NEEDS_CHGNET
def test_chgnet_frames_carry_its_source_and_magmoms():
    frames = generate_frames(
        SynthConfig(frames=2, teacher="auto", relax_probability=0.0), progress=False
    )
    for frame in frames:
        frame.validate()
        assert frame.source == "synthetic-chgnet-0.3.0-rattle"
        assert frame.magmoms is not None and frame.stress is not None
