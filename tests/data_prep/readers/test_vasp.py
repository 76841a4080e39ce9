"""A truncated OUTCAR: the ionic step the file ends inside is quarantined as truncated, never dropped in silence;
an input with no complete step is an error naming it. Built from the real OUTCAR_5 (one ionic step)."""

from __future__ import annotations

import pytest

from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.base import ReaderError
from tests.conftest import FIXTURES

from ..helpers import prep_config, read_records

OUTCAR = FIXTURES / "vasp" / "outcar" / "OUTCAR_5"
ENERGY_1, ENERGY_2 = b"-347.41144759", b"-347.51144759"


def _two_step_outcar() -> bytes:
    """OUTCAR_5 with its ionic step written twice (the second renumbered, with another energy), as a relaxation
    of two steps would be: header, step 1, step 2, timing trailer."""
    lines = OUTCAR.read_bytes().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if b"Iteration" in line)
    end = next(i for i, line in enumerate(lines) if b"FREE ENERGIE OF THE ION-ELECTRON SYSTEM" in line) + 5
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
    assert [r.frame.energy for r in records] == pytest.approx([float(ENERGY_1), float(ENERGY_2)], abs=1e-8)


@pytest.mark.parametrize("marker", [b"TOTAL-FORCE", b"FREE ENERGIE OF THE ION-ELECTRON SYSTEM", b"Iteration      2(   3)"])
def test_a_last_step_cut_short_is_quarantined_as_truncated(tmp_path, marker):
    path = tmp_path / "OUTCAR"
    path.write_bytes(_cut(_two_step_outcar(), marker, 1 if marker != b"Iteration      2(   3)" else 0))
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
    with pytest.raises(ReaderError) as info:  # the whole prep: no frame is an error, not an empty dataset
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
