"""The ASE database reader on a real database (tests/fixtures/dft/10_mptraj_systems.db), pinned to numbers read by
hand."""

from __future__ import annotations

import numpy as np
import pytest
from ase.db import connect

from tests.conftest import FIXTURES

from ..helpers import read_records


def test_ase_database_rows_in_ase_units():
    path = FIXTURES / "dft" / "10_mptraj_systems.db"
    records = read_records(path, "asedb", chunk_frames=4)  # three pieces of rows
    with connect(str(path)) as db:
        rows = list(db.select(sort="id"))
    assert len(records) == len(rows) == 10
    first = records[0].frame
    # row 1: energy -73.4299391, stress (Voigt xx yy zz yz xz xy) 4.29188156e-03 4.28573362e-03 5.88908830e-04 ...
    assert first.energy == pytest.approx(-73.4299391)
    assert first.stress[0, 0] == pytest.approx(4.29188156e-03) and first.stress[
        1, 2
    ] == pytest.approx(5.21758955e-07)
    assert first.frame_id == "10_mptraj_systems.db:1" and first.structure_id == first.frame_id
    for record, row in zip(records, rows):
        np.testing.assert_array_equal(record.frame.positions, row.positions)
        np.testing.assert_array_equal(record.frame.forces, row.forces)


def test_rows_over_the_atom_cap_are_too_large_and_the_rest_are_read():
    path = FIXTURES / "dft" / "10_mptraj_systems.db"
    sizes = [r.frame.natoms for r in read_records(path, "asedb")]
    cap = sorted(sizes)[len(sizes) // 2]
    records = read_records(path, "asedb", max_atoms=cap)
    assert [r.reason == "too_large" for r in records] == [n > cap for n in sizes]
    assert any(n > cap for n in sizes) and any(r.frame is not None for r in records)
