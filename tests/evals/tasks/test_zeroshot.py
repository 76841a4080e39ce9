"""Zero-shot errors and their trivial baseline (references alone, zero forces, zero stress) on a prepared split,
also for a potential with one energy reference table per data source."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from foundation.evals.tasks.zeroshot import zero_shot_errors

from foundation import build_potential
from foundation.data.ase_convert import frame_from_atoms
from foundation.data.writer import write_dataset

REFS = {"a": {"Cu": -3.5, "Al": -3.0}, "b": {"Cu": -4.5, "Al": -2.0}}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    frames = []
    for i in range(6):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers[: i % 3] = 13
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        atoms.get_stress()
        frames.append(
            frame_from_atoms(atoms, frame_id=f"f{i}", structure_id=f"s{i}", source="ab"[i % 2])
        )
    out = tmp_path_factory.mktemp("zs") / "data"
    write_dataset(out, {"test": frames})
    return out, frames


def test_baselines_beside_the_errors_with_a_reference_table_per_source(split):
    path, frames = split
    torch.manual_seed(0)
    potential = build_potential(
        {
            "backbone": {
                "name": "schnet",
                "hidden": 8,
                "layers": 1,
                "cutoff": 3.5,
                "num_radial": 8,
            },
            "heads": {
                "energy": True,
                "forces": "derivative",
                "stress": "derivative",
                "sources": ["a", "b"],
            },
        }
    )
    potential.set_normalization(shift=0.25, source_references=REFS)
    result = zero_shot_errors(potential, path, "test")
    base = result["baselines"]
    expected = [
        abs(
            sum(REFS[f.source][{29: "Cu", 13: "Al"}[int(z)]] for z in f.numbers)
            + 0.25 * f.natoms
            - f.energy
        )
        / f.natoms
        for f in frames
    ]
    assert base["energy_per_atom"]["mae"] == pytest.approx(np.mean(expected))
    assert base["forces"]["mae"] == pytest.approx(
        np.mean(np.abs(np.concatenate([f.forces for f in frames])))
    )
    assert base["stress"]["mae"] == pytest.approx(
        np.mean(np.abs(np.stack([f.stress for f in frames])))
    )
    assert base["forces"]["n"] == result["metrics"]["forces"]["n"]
    by_source = result["per_source"]
    assert set(by_source) == {"a", "b"} and all(m["frames"] == 3 for m in by_source.values())
    for name in (
        "a",
        "b",
    ):  # each source's baseline is the mean of its own frames' reference errors
        mine = [e for e, f in zip(expected, frames) if f.source == name]
        assert by_source[name]["energy_per_atom_baseline_mae"] == pytest.approx(np.mean(mine))
        forces = np.concatenate([f.forces for f in frames if f.source == name])
        assert by_source[name]["forces_baseline_mae"] == pytest.approx(np.mean(np.abs(forces)))
    pooled = np.mean(
        [by_source[name]["energy_per_atom_mae"] for name in ("a", "b")]
    )  # equal frame counts
    assert result["metrics"]["energy_per_atom"]["mae"] == pytest.approx(pooled)
