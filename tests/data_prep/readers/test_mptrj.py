"""MPtrj JSON reader on a figshare-layout file built from real MPtrj frames (tests/fixtures; stress in kBar, VASP
sign)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from foundation.data_prep.readers.mptrj import scan_materials
from pymatgen.core import Structure

from tests.conftest import FIXTURES

from ..helpers import first_frames, read_records, write_mptrj

KBAR = -0.1 / 160.21766208


@pytest.fixture(scope="module")
def mptrj_file(tmp_path_factory):
    frames = first_frames(FIXTURES / "dft" / "mptrj-sample.xyz", 40)
    path = tmp_path_factory.mktemp("mptrj") / "mptrj.json"
    layout = write_mptrj(path, frames)
    return path, layout, frames


def test_frames_convert_to_ase_units_and_sign(mptrj_file):
    path, layout, frames = mptrj_file
    records = read_records(path, "mptrj")
    assert len(records) == len(frames)
    by_id = {r.frame.frame_id: r.frame for r in records}
    for atoms in frames:
        frame = by_id[atoms.info["mptrj_snapshot_id"]]
        entry = layout[atoms.info["mptrj_traj_id"]][atoms.info["mptrj_snapshot_id"]]
        assert frame.structure_id == atoms.info["mptrj_traj_id"]
        assert frame.energy == entry["uncorrected_total_energy"] == atoms.get_potential_energy()
        # the file's stress is kBar with VASP's sign; the frame's is eV/A^3 with ASE's sign, as in the extxyz
        np.testing.assert_allclose(
            frame.stress, np.array(entry["stress"]) * KBAR, rtol=0, atol=1e-15
        )
        np.testing.assert_allclose(
            frame.stress, atoms.get_stress(voigt=False), rtol=1e-12, atol=1e-15
        )
        np.testing.assert_array_equal(frame.forces, atoms.get_forces())
        structure = Structure.from_dict(entry["structure"])
        np.testing.assert_array_equal(frame.positions, structure.cart_coords)
        np.testing.assert_array_equal(frame.cell, structure.lattice.matrix)
        np.testing.assert_array_equal(frame.numbers, structure.atomic_numbers)
        np.testing.assert_allclose(frame.positions, atoms.positions, atol=1e-9)


def test_stress_value_by_hand(mptrj_file):
    path, layout, _ = mptrj_file
    # the first frame (of mptrj-sample.xyz and mptrj-random-1k.xyz) has stress_xx 0.0008926831358242223 eV/A^3 (ASE sign); in the MPtrj
    # layout that is -0.0008926831358242223 * 1602.1766208 = -1.43023605 kBar
    entry = layout["mp-1080834"]["mp-1080834-0-1"]
    assert entry["stress"][0][0] == pytest.approx(-1.43023605, rel=1e-6)
    frame = next(
        r.frame for r in read_records(path, "mptrj") if r.frame.frame_id == "mp-1080834-0-1"
    )
    assert frame.stress[0, 0] == pytest.approx(0.0008926831358242223, rel=1e-12)


def test_corrected_energy_is_an_option(mptrj_file):
    path, layout, _ = mptrj_file
    records = read_records(path, "mptrj", energy="corrected")
    for r in records:
        assert (
            r.frame.energy
            == layout[r.frame.structure_id][r.frame.frame_id]["corrected_total_energy"]
        )


def test_pieces_cut_between_materials_and_cover_every_frame(mptrj_file):
    path, _, frames = mptrj_file
    whole = [r.frame.frame_id for r in read_records(path, "mptrj")]
    pieces = [r.frame.frame_id for r in read_records(path, "mptrj", chunk_frames=3)]
    assert pieces == whole and len(whole) == len(frames)


def test_scan_ignores_braces_and_escaped_quotes_inside_strings(tmp_path, mptrj_file):
    _, layout, _ = mptrj_file
    material, frames = next(iter(layout.items()))
    odd = {
        'we{ird"}\\': {"x": {**next(iter(frames.values())), "note": 'a "{quoted}" \\ brace'}},
        material: frames,
    }
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(odd, indent=1))
    ends, counts, _ = scan_materials(str(path))
    assert counts.tolist() == [1, len(frames)]
    records = read_records(path, "mptrj", chunk_frames=1)
    assert [r.frame.structure_id for r in records] == ['we{ird"}\\'] + [material] * len(frames)


def test_a_malformed_entry_is_a_parse_error_record(tmp_path, mptrj_file):
    _, layout, _ = mptrj_file
    material, frames = next(iter(layout.items()))
    entry = dict(next(iter(frames.values())))
    entry["structure"] = {"lattice": {"matrix": [[1, 0, 0]]}, "sites": []}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"mp-bad": {"mp-bad-0": entry}, material: frames}))
    records = read_records(path, "mptrj")
    assert (
        records[0].frame is None
        and records[0].where == "mp-bad/mp-bad-0"
        and "ValueError" in records[0].error
    )
    assert all(r.frame is not None for r in records[1:])


def test_a_broken_frame_entry_loses_that_frame_alone(tmp_path, mptrj_file):
    _, layout, _ = mptrj_file
    materials = list(layout.items())[:3]
    text = json.dumps(dict(materials))
    broken_material, frames = materials[1]
    broken_frame = list(frames)[0]
    # a malformed number inside one frame entry of the second material
    at = text.index(f'"{broken_frame}": {{')
    cut = text.index('"ef_per_atom": -0.5', at)
    text = text[:cut] + '"ef_per_atom": -0.5.5' + text[cut + len('"ef_per_atom": -0.5') :]
    path = tmp_path / "broken.json"
    path.write_text(text)
    records = read_records(path, "mptrj")
    total = sum(len(f) for _, f in materials)
    assert len(records) == total
    bad = [r for r in records if r.frame is None]
    assert [r.where for r in bad] == [f"{broken_material}/{broken_frame}"]
    assert bad[0].error.startswith("malformed JSON")
    kept = {r.frame.frame_id for r in records if r.frame is not None}
    assert kept == {k for _, f in materials for k in f} - {broken_frame}
