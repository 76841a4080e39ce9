"""The extended XYZ reader on real DFT frames (tests/fixtures, and the whole files of ../shared/data/dft), pinned
to numbers read by hand."""

from __future__ import annotations

import gzip

import ase.io
import numpy as np
import pytest
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.readers import READERS
from foundation.data_prep.readers.base import ReaderError

from tests.conftest import FIXTURES

from ..helpers import read_records

SAMPLES = FIXTURES / "dft"


def test_first_mptrj_frame_matches_the_file_by_hand():
    # Line 2 of mptrj-sample.xyz (frame 0 of mptrj-random-1k.xyz): energy=-28.75765745, stress="0.0008926831358242223
    # ...", ids mptrj_traj_id=mp-1080834 mptrj_snapshot_id=mp-1080834-0-1; line 3: the first Na atom.
    frame = read_records(SAMPLES / "mptrj-sample.xyz", "extxyz")[0].frame
    assert frame.energy == -28.75765745
    assert (
        frame.stress[0, 0] == 0.0008926831358242223 and frame.stress[1, 1] == 0.0030173324072012325
    )
    assert (
        frame.stress[0, 2] == 0.0007746200973649859
    )  # eV/A^3, ASE sign as written (stress_unit=eV/A^3)
    assert frame.structure_id == "mp-1080834" and frame.frame_id == "mp-1080834-0-1"
    assert frame.numbers.tolist() == [11] * 5 + [33] * 4
    np.testing.assert_array_equal(frame.positions[0], [3.87535312, -2.33845927, 4.61262141])
    np.testing.assert_array_equal(frame.forces[0], [-0.00426214, 0.0, -0.01015544])
    np.testing.assert_array_equal(frame.cell[0], [3e-08, -4.67691765, -1e-08])
    assert frame.pbc.all() and frame.source == "MPtrj"


def assert_frames_agree_with_ase(path, chunk_frames: int, step: int) -> None:
    records = read_records(
        path, "extxyz", chunk_frames=chunk_frames
    )  # several pieces, read one after another
    assert len(records) == path.read_text().count("Properties=")
    reference = ase.io.read(
        str(path), index=f"::{step}"
    )  # every step-th frame, checked value by value
    assert len(reference) == len(records[::step])
    for record, atoms in zip(records[::step], reference):
        frame = record.frame
        assert frame is not None, record.error
        np.testing.assert_array_equal(frame.numbers, atoms.numbers)
        np.testing.assert_array_equal(frame.positions, atoms.positions)
        np.testing.assert_array_equal(frame.cell, atoms.cell[:])
        np.testing.assert_array_equal(frame.forces, atoms.get_forces())
        assert frame.energy == atoms.get_potential_energy()
        np.testing.assert_allclose(
            frame.stress.reshape(9)[[0, 4, 8, 5, 2, 1]], atoms.get_stress(), rtol=0, atol=1e-15
        )


@pytest.mark.parametrize(
    "name",
    ["mptrj-sample.xyz", "alexandria-sample.xyz", "mpf-TP-sample.xyz", "mpf-alkali-TP-sample.xyz"],
)
def test_every_sample_frame_agrees_with_ase(name):
    assert_frames_agree_with_ase(SAMPLES / name, chunk_frames=16, step=1)


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name", ["mptrj-random-1k.xyz", "alexandria-random-1k.xyz", "mpf-TP.xyz", "mpf-alkali-TP.xyz"]
)
def test_every_frame_of_the_whole_files_agrees_with_ase(shared_data, name):
    assert_frames_agree_with_ase(shared_data / "dft" / name, chunk_frames=128, step=9)


def test_ids_fall_back_to_file_and_index():
    records = read_records(SAMPLES / "alexandria-sample.xyz", "extxyz")
    # alexandria frames carry alexandria_id (a structure key) but no frame key
    assert records[0].frame.structure_id == "agm002190202"
    assert records[0].frame.frame_id == "alexandria-sample.xyz:0"
    assert records[5].frame.frame_id == "alexandria-sample.xyz:5"
    named = read_records(SAMPLES / "alexandria-sample.xyz", "extxyz", structure_key="frame")
    assert named[0].frame.structure_id == named[0].frame.frame_id


def test_teacher_frames_keep_magmoms():
    path = FIXTURES / "teacher" / "teacher-chgnet-sample.extxyz"
    record = next(
        READERS["extxyz"].read(READERS["extxyz"].plan(str(path), path.name, 3)[0], PrepConfig())
    )
    atoms = next(ase.io.iread(str(path)))
    np.testing.assert_array_equal(record.frame.magmoms, atoms.get_magnetic_moments())
    assert (
        record.frame.structure_id == "proto-w0-0-LuSb"
        and record.frame.frame_id == "proto-w0-0-LuSb-rattle"
    )
    assert record.frame.energy == -75.5855712890625


FRAME = """2
Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1500.0 stress="1 0 0 0 2 0 0 0 3" {units} pbc="T T T"
Cu 0 0 0 100 0 -50
Cu 2 2 2 -100 0 50
"""


def test_units_named_in_the_comment_line_are_converted(tmp_path):
    path = tmp_path / "units.xyz"
    path.write_text(FRAME.format(units="energy_unit=meV forces_unit=meV/A stress_unit=GPa"))
    frame = read_records(path, "extxyz")[0].frame
    assert frame.energy == pytest.approx(-1.5)
    np.testing.assert_allclose(frame.forces[0], [0.1, 0.0, -0.05])
    np.testing.assert_allclose(np.diag(frame.stress), np.array([1, 2, 3]) / 160.21766208, rtol=1e-9)


def test_an_unknown_unit_stops_naming_file_record_and_unit(tmp_path):
    path = tmp_path / "bad-units.xyz"
    path.write_text(
        FRAME.format(units="energy_unit=eV") + FRAME.format(units="energy_unit=furlong")
    )
    with pytest.raises(
        ReaderError, match=r"bad-units.xyz: record 1: unknown energy_unit 'furlong'"
    ):
        read_records(path, "extxyz")


def test_a_broken_count_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.xyz"
    path.write_text(FRAME.format(units="") + "two\n")
    with pytest.raises(ReaderError, match=r"broken.xyz: line 5"):
        read_records(path, "extxyz")


@pytest.mark.parametrize("count", [3, 300_000_000])
@pytest.mark.parametrize("gzipped", [False, True])
def test_a_count_line_beyond_the_end_of_the_file_is_quarantined(tmp_path, count, gzipped):
    # the last frame announces more atoms than the file holds: 3 (one line short) or 300 million (a reader that
    # allocated a line per announced atom would hang)
    text = FRAME.format(units="") + FRAME.format(units="").replace("2\n", f"{count}\n", 1)
    path = tmp_path / ("cut.xyz.gz" if gzipped else "cut.xyz")
    if gzipped:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    records = read_records(path, "extxyz", max_atoms=10**9)  # under the cap: the file's end decides
    assert len(records) == 2 and records[0].frame is not None
    assert records[1].frame is None and records[1].reason == "truncated"
    assert records[1].error.startswith(f"count line exceeds the file: {count} atoms announced")
