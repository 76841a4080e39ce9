"""Alexandria's native files (ComputedStructureEntry JSON, plain and .bz2) written from real pymatgen objects:
values as pymatgen's own conversion gives them, stress converted by hand, bad entries quarantined."""

from __future__ import annotations

import bz2
import json

import numpy as np
import pytest
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.auto import detect_format
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry
from pymatgen.io.ase import AseAtomsAdaptor

from ..helpers import prep_config, read_records

STRESS_KBAR = [[10.0, 1.0, 0.0], [1.0, 20.0, 0.0], [0.0, 0.0, 30.0]]


def _entry(
    i: int, *, forces: bool = True, stress: bool = True, magmom: bool = False
) -> ComputedStructureEntry:
    rng = np.random.default_rng(i)
    lattice = Lattice.from_parameters(4.1 + 0.1 * i, 4.3, 5.2, 84, 97, 101)
    structure = Structure(
        lattice,
        ["Li", "Fe", "O", "O"],
        rng.uniform(0, 1, (4, 3)),
        site_properties={"magmom": [0.0, 3.5, 0.1, 0.1]} if magmom else None,
    )
    data = {"mat_id": f"agm{i:09d}", "e_form": -1.5}
    if forces:
        data["forces"] = rng.normal(0, 0.3, (4, 3)).tolist()
    if stress:
        data["stress"] = STRESS_KBAR
    return ComputedStructureEntry(
        structure, -25.0 - i, correction=-0.7, data=data, entry_id=f"agm{i:09d}"
    )


def _write(path, entries, layout: str = "entries") -> None:
    dicts = [e.as_dict() for e in entries]
    body = {"@module": "pymatgen", "entries": dicts} if layout == "entries" else dicts
    text = json.dumps(body).encode()
    path.write_bytes(bz2.compress(text) if str(path).endswith(".bz2") else text)


@pytest.mark.parametrize(
    "name,layout", [("alexandria_000.json.bz2", "entries"), ("alex.json", "list")]
)
def test_entries_convert_as_pymatgen_does(tmp_path, name, layout):
    entries = [_entry(i, magmom=i == 1) for i in range(3)]
    path = tmp_path / name
    _write(path, entries, layout)
    assert detect_format(str(path)) == "alexandria"
    records = read_records(path, "alexandria")
    assert [r.where for r in records] == [0, 1, 2]
    for record, entry in zip(records, entries):
        frame = record.frame
        atoms = AseAtomsAdaptor.get_atoms(
            ComputedStructureEntry.from_dict(entry.as_dict()).structure
        )
        np.testing.assert_array_equal(frame.positions, atoms.positions)  # bit for bit
        np.testing.assert_array_equal(frame.cell, np.asarray(atoms.cell))
        np.testing.assert_array_equal(frame.numbers, atoms.numbers)
        assert frame.energy == entry.uncorrected_energy  # the uncorrected total, not entry.energy
        np.testing.assert_array_equal(frame.forces, entry.data["forces"])
        assert (
            frame.structure_id == frame.frame_id == entry.entry_id and frame.source == "Alexandria"
        )
    # 10 kBar with VASP's sign (compressive) is -10 * 0.1 / 160.21766208 = -0.0062415091259 eV/A^3 with ASE's sign
    stress = records[0].frame.stress
    assert stress[0, 0] == pytest.approx(-0.0062415091259, rel=1e-9)
    assert stress[2, 2] == pytest.approx(3 * -0.0062415091259, rel=1e-9) and stress[
        0, 1
    ] == pytest.approx(-0.00062415091259)
    np.testing.assert_array_equal(records[1].frame.magmoms, [0.0, 3.5, 0.1, 0.1])
    assert records[0].frame.magmoms is None


def test_corrected_energy_and_absent_labels(tmp_path):
    path = tmp_path / "a.json"
    _write(path, [_entry(0, forces=False, stress=False)])
    (record,) = read_records(path, "alexandria", energy="corrected")
    assert record.frame.energy == pytest.approx(
        -25.7
    )  # ComputedEntry.energy = uncorrected + correction
    assert record.frame.forces is None and record.frame.stress is None


def test_forces_from_site_properties(tmp_path):
    entry = _entry(0, forces=False)
    forces = np.arange(12, dtype=float).reshape(4, 3) / 10
    entry.structure.add_site_property("forces", forces.tolist())
    path = tmp_path / "a.json"
    _write(path, [entry])
    np.testing.assert_array_equal(read_records(path, "alexandria")[0].frame.forces, forces)


def test_bad_entries_are_quarantined_with_file_record_and_reason(tmp_path):
    good = [_entry(i) for i in range(4)]
    dicts = [e.as_dict() for e in good]
    missing = dict(dicts[1])
    del missing["structure"]
    disordered = _entry(9).as_dict()
    disordered["structure"]["sites"][0]["species"] = [
        {"element": "Li", "occu": 0.5},
        {"element": "Na", "occu": 0.5},
    ]
    path = tmp_path / "alexandria_001.json.bz2"
    path.write_bytes(
        bz2.compress(
            json.dumps({"entries": [dicts[0], missing, dicts[2], disordered, dicts[3]]}).encode()
        )
    )
    result = run_prep(prep_config([path], tmp_path / "out", split={"train": 1.0}))
    assert result.manifest.num_frames() == 3
    assert result.manifest.reader["options"]["alexandria_energy"].startswith(
        "energy (the entry's uncorrected"
    )
    lines = [
        json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert [(q["file"], q["record"], q["reason"]) for q in lines] == [
        ("alexandria_001.json.bz2", "1", "parse_error"),
        ("alexandria_001.json.bz2", "3", "parse_error"),
    ]
    assert "structure" in lines[0]["message"] and "disordered" in lines[1]["message"]


def test_a_truncated_bz2_keeps_the_entries_before_the_break(tmp_path):
    path = tmp_path / "alexandria_002.json.bz2"
    text = json.dumps({"entries": [_entry(i).as_dict() for i in range(3)]}).encode()
    path.write_bytes(bz2.compress(text[: len(text) - 200]))  # ends inside the last entry
    records = read_records(path, "alexandria")
    assert [r.frame is not None for r in records] == [True, True, False]
    assert records[-1].reason == "truncated" and records[-1].where == 2


def test_one_bad_entry_loses_one_entry(tmp_path):
    # entry 2: energy NaN as json.dump writes it; entry 3: a malformed number; entry 4: NaN in an unused field
    dicts = [_entry(i).as_dict() for i in range(6)]
    dicts[2]["energy"] = float("nan")
    dicts[4]["data"]["e_form"] = float("nan")
    parts = [json.dumps(d) for d in dicts]
    parts[3] = parts[3].replace('"correction": -0.7', '"correction": -0.7.1')
    path = tmp_path / "alexandria_001.json"
    path.write_text('{"@module": "pymatgen", "entries": [' + ", ".join(parts) + "]}")
    records = read_records(path, "alexandria")
    assert [r.where for r in records] == [0, 1, 2, 3, 4, 5]
    assert records[3].frame is None and records[3].error.startswith("malformed JSON")
    assert np.isnan(records[2].frame.energy) and records[4].frame is not None
    result = run_prep(prep_config([path], tmp_path / "out", min_distance=0.0))
    assert (result.report.records, result.report.kept) == (6, 4)
    assert result.report.quarantined == {"non_finite": 1, "parse_error": 1}


def test_an_entry_over_the_byte_cap_is_skipped_unread(tmp_path):
    dicts = [_entry(i).as_dict() for i in range(3)]
    dicts[1]["data"]["padding"] = "x" * 5000
    path = tmp_path / "alex.json"
    path.write_text(json.dumps({"entries": dicts}))
    records = read_records(path, "alexandria", max_record_bytes=4096)
    assert [r.frame is not None for r in records] == [True, False, True]
    assert records[1].reason == "too_large" and "max_record_bytes 4096" in records[1].error
