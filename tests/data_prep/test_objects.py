"""prep_objects: ASE Atoms, pymatgen Structures and ComputedStructureEntries go through the same validation,
quarantine, split and shards as files; a bad object is quarantined with its index and reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from foundation.data_prep.objects import prep_objects
from foundation.data_prep.pipeline import run_prep
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from foundation.data.dataset import open_dataset

from .helpers import prep_config


def _atoms(i: int) -> Atoms:
    rng = np.random.default_rng(i)
    atoms = Atoms(
        "Cu2Zn",
        cell=np.diag([3.6, 3.7, 3.8]),
        pbc=True,
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]],
    )
    atoms.positions += rng.normal(0, 0.05, (3, 3))
    atoms.info["structure_id"] = f"cuzn-{i % 4}"
    atoms.info["frame_id"] = f"cuzn-frame-{i}"
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-10.0 + 0.01 * i,
        forces=rng.normal(0, 0.1, (3, 3)),
        stress=rng.normal(0, 0.01, 6),
    )
    return atoms


def _structure() -> Structure:
    structure = Structure(
        Lattice.cubic(4.0),
        ["Na", "Cl"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
        site_properties={"forces": [[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]},
        properties={"energy": -7.5},
    )
    return structure


def _entry() -> ComputedStructureEntry:
    structure = Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]])
    return ComputedStructureEntry(
        structure,
        -8.25,
        correction=-0.5,
        entry_id="mp-13",
        data={"forces": [[0.0, 0.0, 0.0]], "stress": np.diag([10.0, 10.0, 10.0]).tolist()},
    )


def test_objects_give_the_dataset_their_extxyz_gives(tmp_path):
    frames = [_atoms(i) for i in range(24)]
    write(tmp_path / "frames.xyz", frames, format="extxyz")
    from_file = run_prep(
        prep_config([tmp_path / "frames.xyz"], tmp_path / "file", container="both")
    )
    from_objects = prep_objects(
        iter(frames),
        out=str(tmp_path / "objects"),
        container="both",
        progress=False,
        chunk_frames=10,
        source="teacher-v1",
    )
    assert (
        from_objects.chunks == 3
        and from_objects.manifest.num_frames() == from_file.manifest.num_frames() == 24
    )
    for split in from_file.manifest.splits:
        a = {f.frame_id: f for f in open_dataset(tmp_path / "file", split, "lmdb")}
        b = {f.frame_id: f for f in open_dataset(tmp_path / "objects", split, "wds")}
        assert a.keys() == b.keys()
        for key, frame in a.items():
            np.testing.assert_allclose(
                b[key].positions, frame.positions, rtol=0, atol=1e-7
            )  # extxyz prints 8 digits
            assert (
                b[key].energy == pytest.approx(frame.energy, abs=1e-8)
                and b[key].source == "teacher-v1"
            )
    assert from_objects.manifest.reader["inputs"] == [
        {"file": "objects.records.jsonl", "format": "records"}
    ]


def test_structures_entries_and_bad_objects(tmp_path):
    no_labels = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=np.eye(3) * 5, pbc=True)
    wrong_shape = _atoms(100)
    wrong_shape.calc.results["forces"] = np.zeros((2, 3))
    objects = [_atoms(0), _structure(), "not a frame", _entry(), no_labels, wrong_shape, _atoms(1)]
    result = prep_objects(objects, out=str(tmp_path / "out"), progress=False, split={"train": 1.0})
    frames = {f.frame_id: f for f in open_dataset(tmp_path / "out")}
    assert set(frames) == {"cuzn-frame-0", "cuzn-frame-1", "objects:1", "mp-13"}
    nacl, iron = frames["objects:1"], frames["mp-13"]
    assert nacl.energy == -7.5 and nacl.forces[0, 0] == 0.1 and nacl.positions[1, 0] == 2.0
    assert iron.energy == -8.25  # the uncorrected total energy
    assert iron.stress[0, 0] == pytest.approx(-10 * 0.1 / 160.21766208)
    lines = [
        json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert [(q["file"], q["record"], q["reason"]) for q in lines] == [
        ("objects.records.jsonl", "2", "parse_error"),
        ("objects.records.jsonl", "4", "missing_label"),
        ("objects.records.jsonl", "5", "shape_mismatch"),
    ]
    assert "neither an ase.Atoms nor a pymatgen" in lines[0]["message"]
    assert result.manifest.quarantine["total"] == 3


def test_options_are_checked(tmp_path):
    with pytest.raises(Exception, match="shard_sise"):
        prep_objects([_atoms(0)], out=str(tmp_path / "a"), shard_sise=3)
    with pytest.raises(ValueError, match="no objects"):
        prep_objects([], out=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="name"):
        prep_objects([_atoms(0)], out=str(tmp_path / "c"), name="../escape")
