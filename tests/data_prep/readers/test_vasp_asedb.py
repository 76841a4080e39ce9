"""VASP (OUTCAR, vasprun.xml) and ASE database readers on the real files (tests/fixtures), pinned to numbers read
by hand."""

from __future__ import annotations

import numpy as np
import pytest
from ase.db import connect

from foundation.data_prep.readers.base import ReaderError, vasp_kbar_to_ase
from tests.conftest import FIXTURES

from ..helpers import read_records

KBAR = -0.1 / 160.21766208  # kBar with VASP's sign -> eV/A^3 with ASE's sign


def test_outcar_stress_is_converted_from_kbar_and_vasp_sign():
    # OUTCAR_5, last ionic step: "in kB  202.45076  200.36067  190.74363  0.00000  -12.10941  0.00000"
    # (VASP order XX YY ZZ XY YZ ZX), "energy(sigma->0) = -347.41144759", first TOTAL-FORCE row
    # "2.73078  4.09731  1.48222  -0.156124  0.392990  -0.227401".
    records = read_records(FIXTURES / "vasp" / "outcar" / "OUTCAR_5", "vasp-outcar")
    assert len(records) == 1
    frame = records[0].frame
    assert frame.natoms == 12 and frame.energy == pytest.approx(-347.41144759, abs=1e-8)
    np.testing.assert_allclose(np.diag(frame.stress), np.array([202.45076, 200.36067, 190.74363]) * KBAR, rtol=1e-6)
    assert frame.stress[0, 0] < 0  # VASP's positive (compressive) kBar is a negative ASE stress
    assert frame.stress[1, 2] == pytest.approx(-12.10941 * KBAR, rel=1e-6)
    assert frame.stress[2, 1] == pytest.approx(-12.10941 * KBAR, rel=1e-6)
    assert frame.stress[0, 1] == 0.0 and frame.stress[0, 2] == 0.0
    np.testing.assert_allclose(frame.positions[0], [2.73078, 4.09731, 1.48222])
    np.testing.assert_allclose(frame.forces[0], [-0.156124, 0.392990, -0.227401])
    assert frame.structure_id == "OUTCAR_5" and frame.frame_id == "OUTCAR_5:0" and frame.source == "VASP"


def test_outcar_shear_components_land_in_the_right_place():
    # OUTCAR_1 (its band-energy tables left out of the fixture): "in kB  77.70829  12.04430  62.22823  2.52352  9.28393  66.48603" (XX YY ZZ XY YZ ZX)
    frame = read_records(FIXTURES / "vasp" / "outcar" / "OUTCAR_1", "vasp-outcar")[0].frame
    expected = np.array([[77.70829, 2.52352, 66.48603], [2.52352, 12.04430, 9.28393], [66.48603, 9.28393, 62.22823]])
    np.testing.assert_allclose(frame.stress, expected * KBAR, rtol=1e-6)
    assert frame.natoms == 96 and frame.energy == pytest.approx(-2759.11555469, abs=1e-8)


def test_vasprun_keeps_raw_forces_of_fixed_atoms():
    # 27998_vasprun.xml: selective dynamics fixes atom 0, whose raw force row is
    # "-0.00004926  -0.00006988  -1.21463575"; the last scstep has e_0_energy -140.07469344; no stress (ISIF=0).
    records = read_records(FIXTURES / "vasp" / "27998_vasprun.xml", "vasp-xml")
    assert len(records) == 1
    frame = records[0].frame
    assert frame.natoms == 16 and sorted(set(frame.numbers.tolist())) == [75, 77]
    np.testing.assert_allclose(frame.forces[0], [-0.00004926, -0.00006988, -1.21463575])
    assert frame.energy == pytest.approx(-140.07469344, abs=1e-8)
    assert frame.stress is None
    np.testing.assert_allclose(frame.cell[0], [5.55082671, 0.0, 0.0])


def test_conversion_constant():
    assert vasp_kbar_to_ase(np.array([160.21766208 * 10.0]))[0] == pytest.approx(-1.0)


def test_a_truncated_outcar_is_an_error_naming_the_file(tmp_path):
    broken = tmp_path / "OUTCAR"
    broken.write_bytes((FIXTURES / "vasp" / "outcar" / "OUTCAR_5").read_bytes()[:5000])
    with pytest.raises(ReaderError, match="OUTCAR"):
        read_records(broken, "vasp-outcar")


def test_ase_database_rows_in_ase_units():
    path = FIXTURES / "dft" / "10_mptraj_systems.db"
    records = read_records(path, "asedb", chunk_frames=4)  # three pieces of rows
    with connect(str(path)) as db:
        rows = list(db.select(sort="id"))
    assert len(records) == len(rows) == 10
    first = records[0].frame
    # row 1: energy -73.4299391, stress (Voigt xx yy zz yz xz xy) 4.29188156e-03 4.28573362e-03 5.88908830e-04 ...
    assert first.energy == pytest.approx(-73.4299391)
    assert first.stress[0, 0] == pytest.approx(4.29188156e-03) and first.stress[1, 2] == pytest.approx(5.21758955e-07)
    assert first.frame_id == "10_mptraj_systems.db:1" and first.structure_id == first.frame_id
    for record, row in zip(records, rows):
        np.testing.assert_array_equal(record.frame.positions, row.positions)
        np.testing.assert_array_equal(record.frame.forces, row.forces)
