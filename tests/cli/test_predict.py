"""`foundation predict MODEL FILES... --out OUT.extxyz`: real DFT inputs of two formats (extxyz, VASP OUTCAR) are
labelled by a release; the output reads back with ase.io and matches the calculator frame by frame."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from foundation import load_calculator
from foundation.cli.main import main
from tests.release_helpers import write_tiny_release
from tests.train.finetune_helpers import FIXTURES, parent_dataset, train_parent

OUTCAR = FIXTURES.parent / "vasp" / "outcar" / "OUTCAR_5"


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release of a tiny SchNet trained 3 steps on real MPtrj frames."""
    root = tmp_path_factory.mktemp("predict")
    run = train_parent(parent_dataset(root / "data"), root / "run")
    assert main(["release", str(run), "--out", str(root / "release"), "--name", "tiny"]) == 0
    return root / "release"


def test_labels_real_frames_of_two_formats_like_the_calculator(release, tmp_path):
    inputs = [FIXTURES / "mptrj-sample.xyz", OUTCAR]
    out = tmp_path / "labelled.extxyz"
    assert (
        main(
            [
                "predict",
                str(release),
                *map(str, inputs),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--max-atoms",
                "64",
                "--no-progress",
            ]
        )
        == 0
    )
    frames = ase.io.read(out, index=":")
    originals = ase.io.read(inputs[0], index=":") + ase.io.read(
        inputs[1], index=":", format="vasp-out"
    )
    assert len(frames) == len(originals) and not list(tmp_path.glob(".*tmp*"))
    calc = load_calculator(release)
    for k in (0, 1, 40, len(originals) - 1):  # MPtrj frames and the last OUTCAR step
        got, atoms = frames[k], originals[k].copy()
        np.testing.assert_allclose(got.positions, atoms.positions, atol=1e-7)
        atoms.calc = calc
        assert got.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(got.get_forces(), atoms.get_forces(), atol=1e-6)
        np.testing.assert_allclose(got.get_stress(), atoms.get_stress(), atol=1e-8)
        energies = got.get_potential_energies()
        np.testing.assert_allclose(energies, atoms.get_potential_energies(), atol=1e-6)
        assert energies.sum() == pytest.approx(got.get_potential_energy(), abs=1e-5)
        # the input's own DFT labels ride along, for comparison
        assert got.info["ref_energy"] == pytest.approx(
            originals[k].get_potential_energy(), abs=1e-6
        )
        np.testing.assert_allclose(got.arrays["ref_forces"], originals[k].get_forces(), atol=1e-6)
    assert {f.info["file"] for f in frames} == {"mptrj-sample.xyz", "OUTCAR_5"}


def test_bad_input_is_one_line_and_nonzero(release, tmp_path, capsys):
    bad = tmp_path / "broken.extxyz"
    bad.write_text(
        '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3\nCu 0 0 0\nCu 0 0 x\n'
    )
    assert (
        main(
            [
                "predict",
                str(release),
                str(bad),
                "--out",
                str(tmp_path / "o.extxyz"),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.extxyz" in err and "record 0" in err
    assert not (tmp_path / "o.extxyz").exists()
    assert (
        main(["predict", str(tmp_path / "nowhere"), str(bad), "--out", str(tmp_path / "o.extxyz")])
        == 2
    )


def test_structures_without_labels_through_ase(release, tmp_path):
    from pymatgen.core import Lattice, Structure

    cif = tmp_path / "rocksalt.cif"
    Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).to(filename=str(cif))
    out = tmp_path / "labelled.extxyz"
    assert (
        main(
            [
                "predict",
                str(release),
                str(cif),
                "--format",
                "ase",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    [got] = ase.io.read(out, index=":")
    atoms = ase.io.read(cif)
    atoms.calc = load_calculator(release)
    assert len(got) == 8 and "ref_energy" not in got.info
    assert got.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(got.get_stress(), atoms.get_stress(), atol=1e-8)


def test_a_source_the_model_does_not_have_is_one_line(release, tmp_path, capsys):
    code = main(
        [
            "predict",
            str(release),
            str(OUTCAR),
            "--out",
            str(tmp_path / "o.extxyz"),
            "--source",
            "PBE54",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert (
        code == 2
        and len(err.splitlines()) == 1
        and "source 'PBE54'" in err
        and "one energy reference" in err
    )
    assert not (tmp_path / "o.extxyz").exists()


@pytest.mark.parametrize("fmt", ["auto", "ase"])
def test_a_structure_with_no_atoms_is_an_error_naming_it(tmp_path, capsys, fmt):
    release = write_tiny_release(tmp_path, name="tiny")
    frames = tmp_path / "frames.extxyz"
    ase.io.write(frames, bulk("NaCl", "rocksalt", a=5.64))
    with open(frames, "a") as fh:  # then a frame of 0 atoms
        fh.write('0\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3 pbc="T T T"\n')
    out = tmp_path / "labelled.extxyz"
    argv = ["predict", str(release), str(frames), "--out", str(out), "--format", fmt]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {frames}: record 1: a structure with 0 atoms; nothing to predict"
    assert not out.exists()
