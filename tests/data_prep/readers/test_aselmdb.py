"""OMat24 / fairchem `.aselmdb` shards (ASE database on LMDB, backend from ase-db-backends): files these tests write
with that backend are read in chunks of rows, values as written, and an undecodable row is quarantined alone."""

from __future__ import annotations

import json
import zlib

import lmdb
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.auto import detect_format

from ..helpers import prep_config, read_records

ROWS = 7


def _atoms(i: int) -> Atoms:
    rng = np.random.default_rng(i)
    atoms = Atoms(
        "FeO2",
        cell=np.diag([3.1, 3.2, 3.3]) + 0.1 * i,
        pbc=True,
        scaled_positions=[[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5]],
    )
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-20.0 - i,
        forces=rng.normal(0, 0.2, (3, 3)),
        stress=np.array([0.01, 0.02, 0.03, 0.004, 0.005, 0.006]) * (i + 1),
    )
    return atoms


def _write(path, rows: int = ROWS, first: int = 0) -> None:
    """An OMat24-like shard: fairchem keeps `sid` in the row data; a source key-value pair on every row."""
    with connect(str(path), type="aselmdb") as db:
        for i in range(first, first + rows):
            db.write(
                _atoms(i),
                data={"sid": f"agm{i // 2:04d}-rattled-{i}"},
                material=f"agm{i // 2:04d}",
                source="OMat24-PBE",
            )


def test_rows_in_ase_units_chunked_by_row(tmp_path):
    path = tmp_path / "omat-000.aselmdb"
    _write(path)
    assert detect_format(str(path)) == "asedb"
    records = read_records(path, "asedb", chunk_frames=3, structure_key="material", frame_key="sid")
    assert [r.where for r in records] == list(range(1, ROWS + 1))  # three pieces: rows 1-3, 4-6, 7
    for i, record in enumerate(records):
        frame, atoms = record.frame, _atoms(i)
        assert frame.energy == -20.0 - i and frame.source == "OMat24-PBE"
        assert (
            frame.frame_id == f"agm{i // 2:04d}-rattled-{i}"
            and frame.structure_id == f"agm{i // 2:04d}"
        )
        np.testing.assert_array_equal(frame.positions, atoms.positions)
        np.testing.assert_array_equal(frame.forces, atoms.get_forces())
    # Voigt (xx yy zz yz xz xy) of row 2 (i=1): 0.02 0.04 0.06 0.008 0.010 0.012, ASE's sign kept
    stress = records[1].frame.stress
    assert stress[0, 0] == pytest.approx(0.02) and stress[2, 2] == pytest.approx(0.06)
    assert stress[1, 2] == stress[2, 1] == pytest.approx(0.008) and stress[0, 1] == pytest.approx(
        0.012
    )


def test_the_shard_is_opened_read_only_and_can_be_read_twice_in_one_process(tmp_path):
    path = tmp_path / "a.aselmdb"
    _write(path, 2)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert len(read_records(path, "asedb")) == len(read_records(path, "asedb")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no lock or new file beside it


def test_an_undecodable_row_is_quarantined_with_file_record_and_reason(tmp_path):
    path = tmp_path / "broken.aselmdb"
    _write(path)
    env = lmdb.open(str(path), subdir=False)
    with env.begin(write=True) as txn:
        txn.put(b"3", zlib.compress(b"{not json"))
    env.close()
    result = run_prep(prep_config([path], tmp_path / "out", frame_key="sid", split={"train": 1.0}))
    assert result.manifest.num_frames() == ROWS - 1
    assert result.manifest.quarantine["by_reason"] == {"parse_error": 1}
    (line,) = [
        json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert (
        line["file"] == "broken.aselmdb"
        and line["record"] == "3"
        and line["reason"] == "parse_error"
    )
    assert line["message"]


def test_a_directory_of_shards_as_fairchem_ships_them(tmp_path):
    shards = tmp_path / "omat" / "train" / "rattled-300"
    shards.mkdir(parents=True)
    _write(shards / "data.0000.aselmdb", 4)
    _write(shards / "data.0001.aselmdb", 3, first=4)
    assert sorted(p.name for p in shards.iterdir())[:2] == [
        "data.0000.aselmdb",
        "data.0000.aselmdb-lock",
    ]
    result = run_prep(
        prep_config([tmp_path / "omat"], tmp_path / "out", frame_key="index", split={"train": 1.0})
    )
    assert [i["format"] for i in result.manifest.reader["inputs"]] == [
        "asedb",
        "asedb",
    ]  # lock files are skipped
    assert result.manifest.num_frames() == 7
