"""VASP readers (OUTCAR, vasprun.xml) on real files (tests/fixtures), pinned to numbers read by hand; a truncated
OUTCAR: the ionic step the file ends inside is quarantined as truncated, never dropped in silence; an input with no
complete step is an error naming it (built from the real OUTCAR_5, one ionic step)."""

from __future__ import annotations

import numpy as np
import pytest
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.base import ReaderError, vasp_kbar_to_ase

from tests.conftest import FIXTURES

from ..helpers import prep_config, read_records

OUTCAR = FIXTURES / "vasp" / "outcar" / "OUTCAR_5"
ENERGY_1, ENERGY_2 = b"-347.41144759", b"-347.51144759"
KBAR = -0.1 / 160.21766208  # kBar with VASP's sign -> eV/A^3 with ASE's sign


def test_outcar_stress_is_converted_from_kbar_and_vasp_sign():
    # OUTCAR_5, last ionic step: "in kB  202.45076  200.36067  190.74363  0.00000  -12.10941  0.00000"
    # (VASP order XX YY ZZ XY YZ ZX), "energy(sigma->0) = -347.41144759", first TOTAL-FORCE row
    # "2.73078  4.09731  1.48222  -0.156124  0.392990  -0.227401".
    records = read_records(FIXTURES / "vasp" / "outcar" / "OUTCAR_5", "vasp-outcar")
    assert len(records) == 1
    frame = records[0].frame
    assert frame.natoms == 12 and frame.energy == pytest.approx(-347.41144759, abs=1e-8)
    np.testing.assert_allclose(
        np.diag(frame.stress), np.array([202.45076, 200.36067, 190.74363]) * KBAR, rtol=1e-6
    )
    assert frame.stress[0, 0] < 0  # VASP's positive (compressive) kBar is a negative ASE stress
    assert frame.stress[1, 2] == pytest.approx(-12.10941 * KBAR, rel=1e-6)
    assert frame.stress[2, 1] == pytest.approx(-12.10941 * KBAR, rel=1e-6)
    assert frame.stress[0, 1] == 0.0 and frame.stress[0, 2] == 0.0
    np.testing.assert_allclose(frame.positions[0], [2.73078, 4.09731, 1.48222])
    np.testing.assert_allclose(frame.forces[0], [-0.156124, 0.392990, -0.227401])
    assert frame.structure_id == frame.frame_id == "OUTCAR_5:0" and frame.source == "VASP"


def test_outcar_shear_components_land_in_the_right_place():
    # OUTCAR_1 (its band-energy tables left out of the fixture): "in kB  77.70829  12.04430  62.22823  2.52352  9.28393  66.48603" (XX YY ZZ XY YZ ZX)
    frame = read_records(FIXTURES / "vasp" / "outcar" / "OUTCAR_1", "vasp-outcar")[0].frame
    expected = np.array(
        [[77.70829, 2.52352, 66.48603], [2.52352, 12.04430, 9.28393], [66.48603, 9.28393, 62.22823]]
    )
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


def _two_step_outcar() -> bytes:
    """OUTCAR_5 with its ionic step written twice (the second renumbered, with another energy), as a relaxation
    of two steps would be: header, step 1, step 2, timing trailer."""
    lines = OUTCAR.read_bytes().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if b"Iteration" in line)
    end = (
        next(
            i for i, line in enumerate(lines) if b"FREE ENERGIE OF THE ION-ELECTRON SYSTEM" in line
        )
        + 5
    )
    step = b"".join(lines[first:end])
    second = step.replace(b"Iteration      1(", b"Iteration      2(").replace(ENERGY_1, ENERGY_2)
    return b"".join(lines[:first]) + step + second + b"".join(lines[end:])


def _cut(text: bytes, marker: bytes, occurrence: int) -> bytes:
    """`text` up to (not including) the given occurrence (0-based) of `marker`."""
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(marker, at + 1)
    return text[:at]


def test_the_two_step_file_reads_two_frames(tmp_path):
    path = tmp_path / "OUTCAR"
    path.write_bytes(_two_step_outcar())
    records = read_records(path, "vasp-outcar")
    assert [r.frame.energy for r in records] == pytest.approx(
        [float(ENERGY_1), float(ENERGY_2)], abs=1e-8
    )


@pytest.mark.parametrize(
    "marker",
    [b"TOTAL-FORCE", b"FREE ENERGIE OF THE ION-ELECTRON SYSTEM", b"Iteration      2(   3)"],
)
def test_a_last_step_cut_short_is_quarantined_as_truncated(tmp_path, marker):
    path = tmp_path / "OUTCAR"
    path.write_bytes(
        _cut(_two_step_outcar(), marker, 1 if marker != b"Iteration      2(   3)" else 0)
    )
    records = read_records(path, "vasp-outcar")
    assert len(records) == 2
    assert records[0].frame.energy == pytest.approx(float(ENERGY_1), abs=1e-8)
    assert records[1].frame is None and records[1].where == 1 and records[1].reason == "truncated"
    assert records[1].error.startswith("ionic step 1 incomplete")


def test_an_only_step_cut_short_is_an_error_naming_the_input(tmp_path):
    path = tmp_path / "OUTCAR"
    path.write_bytes(_cut(OUTCAR.read_bytes(), b"FREE ENERGIE OF THE ION-ELECTRON SYSTEM", 0))
    records = read_records(path, "vasp-outcar")
    assert len(records) == 1 and records[0].reason == "truncated"
    with pytest.raises(
        ReaderError
    ) as info:  # the whole prep: no frame is an error, not an empty dataset
        run_prep(prep_config([path], tmp_path / "out"))
    assert str(path) in str(info.value) and "no frame could be read" in str(info.value)
    assert "ionic step 0 incomplete" in str(info.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_truncated_step_beside_good_inputs_is_counted_in_the_manifest(tmp_path):
    cut = tmp_path / "cut" / "OUTCAR"
    cut.parent.mkdir()
    cut.write_bytes(_cut(_two_step_outcar(), b"TOTAL-FORCE", 1))
    result = run_prep(prep_config([cut], tmp_path / "out", split={"train": 1.0}))
    assert result.manifest.num_frames() == 1
    assert result.manifest.quarantine["by_reason"] == {"truncated": 1}
