"""No empty success: an input without a frame, or a run where no frame passes validation, is an error naming why."""

from __future__ import annotations

import pytest
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.readers.base import ReaderError

from tests.conftest import FIXTURES

from .helpers import prep_config

SAMPLE = FIXTURES / "dft" / "mpf-TP-sample.xyz"


def test_an_empty_input_beside_good_ones_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(ReaderError, match=f"{empty}: no frames found"):
        run_prep(prep_config([SAMPLE, empty], tmp_path / "out", format="extxyz"))


def test_no_frame_passing_validation_is_an_error_not_an_empty_dataset(tmp_path):
    with pytest.raises(ReaderError) as info:
        run_prep(
            prep_config([SAMPLE], tmp_path / "out", max_force=1e-6)
        )  # every frame has a larger force
    assert "passed validation" in str(info.value) and "force_too_large 40" in str(info.value)
    assert not (tmp_path / "out" / "manifest.json").exists()
