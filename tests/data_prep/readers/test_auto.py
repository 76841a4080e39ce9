"""`--format auto`: each kind of real file is recognised; unreadable inputs are errors naming the file."""

from __future__ import annotations

import pytest
from foundation.data_prep.readers.auto import detect_format, expand_inputs
from foundation.data_prep.readers.base import ReaderError

from tests.conftest import FIXTURES

from ..helpers import first_frames, write_mptrj


@pytest.mark.parametrize(
    "relpath, kind",
    [
        ("dft/mptrj-sample.xyz", "extxyz"),
        ("teacher/teacher-chgnet-sample.extxyz", "extxyz"),
        ("vasp/outcar/OUTCAR_1", "vasp-outcar"),
        ("vasp/27998_vasprun.xml", "vasp-xml"),
        ("dft/10_mptraj_systems.db", "asedb"),
    ],
)
def test_real_files_are_recognised(relpath, kind):
    assert detect_format(str(FIXTURES / relpath)) == kind


def test_mptrj_json_and_ase_json_database_are_told_apart(tmp_path):
    frames = first_frames(FIXTURES / "dft" / "mptrj-sample.xyz", 3)
    write_mptrj(tmp_path / "trj.json", frames)
    from ase.db import connect

    with connect(str(tmp_path / "ase.json")) as db:
        for atoms in frames:
            db.write(atoms)
    assert detect_format(str(tmp_path / "trj.json")) == "mptrj"
    assert detect_format(str(tmp_path / "ase.json")) == "asedb"


def test_directories_expand_to_their_readable_files():
    found = expand_inputs([str(FIXTURES / "vasp")], "auto")
    assert [kind for _, kind, _ in found] == ["vasp-xml"] + ["vasp-outcar"] * 2
    assert [name for _, _, name in found][:2] == ["vasp/27998_vasprun.xml", "vasp/outcar/OUTCAR_1"]


def test_colliding_names_fall_back_to_paths_from_the_common_directory(tmp_path):
    for run in ("run1", "run2"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "frames.xyz").write_text("1\nProperties=species:S:1:pos:R:3\nH 0 0 0\n")
    found = expand_inputs(
        [str(tmp_path / "run1" / "frames.xyz"), str(tmp_path / "run2" / "frames.xyz")], "auto"
    )
    assert [name for _, _, name in found] == ["run1/frames.xyz", "run2/frames.xyz"]


def test_an_unreadable_file_is_an_error_naming_it(tmp_path):
    garbage = tmp_path / "garbage.xyz"
    garbage.write_bytes(b"\x00\x01 not a frame \xff" * 10)
    with pytest.raises(ReaderError, match="garbage.xyz: cannot tell its format"):
        expand_inputs([str(garbage)], "auto")
    with pytest.raises(ReaderError, match="missing.xyz: no such file"):
        expand_inputs([str(tmp_path / "missing.xyz")], "auto")


def test_a_forced_format_that_does_not_fit_names_the_file(tmp_path):
    from foundation.data_prep.readers import READERS

    garbage = tmp_path / "frames.xyz"
    garbage.write_text("hello\nworld\n")
    with pytest.raises(ReaderError, match="frames.xyz: line 1"):
        READERS["extxyz"].plan(str(garbage), "frames.xyz", 10)
    with pytest.raises(ReaderError, match="frames.xyz"):
        READERS["mptrj"].plan(str(garbage), "frames.xyz", 10)
