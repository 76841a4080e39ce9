"""Values no material has are quarantined before they reach the element references, and the default bounds keep
every frame of the real data."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.auto import expand_inputs
from foundation.data_prep.validate import check_frame

from .helpers import prep_config, read_records


def test_absurd_energies_and_stresses_are_quarantined_and_references_stay_sane(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for k, energy in enumerate([-28.4, -29.2, 1e30, -28.8, 1e308, -28.0, -29.6]):  # totals, 4 atoms
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
        atoms.info.update(energy=energy, frame_id=f"f{k}")
        atoms.info["stress"] = np.full(6, 1e6 if k == 5 else 0.01)
        atoms.arrays["forces"] = rng.normal(scale=0.1, size=atoms.positions.shape)
        frames.append(atoms)
    write(tmp_path / "frames.xyz", frames, format="extxyz")
    result = run_prep(
        prep_config([tmp_path / "frames.xyz"], tmp_path / "out", split={"train": 1.0})
    )
    assert result.report.quarantined == {"energy_out_of_bounds": 2, "stress_out_of_bounds": 1}
    assert result.manifest.element_references["Cu"] == pytest.approx(-7.25, abs=0.2)


@pytest.mark.shared_data
def test_the_default_bounds_keep_every_real_frame(shared_data):
    defaults = PrepConfig()
    inputs = [shared_data / d for d in ("dft", "teacher", "vasp")]
    checked = 0
    for path, fmt, _ in expand_inputs([str(p) for p in inputs], "auto"):
        for record in read_records(path, fmt):
            assert record.frame is not None, (path, record.where, record.error)
            rejection = check_frame(
                record.frame,
                required=(),
                max_force=float("inf"),
                min_distance=0.0,
                max_energy_per_atom=defaults.max_energy_per_atom,
                max_stress=defaults.max_stress,
            )
            assert rejection is None, (path, record.where, rejection)
            checked += 1
    assert checked > 14_000
