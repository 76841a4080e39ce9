"""Predictions beyond the grid: from the covering fit, with an interval, written once, compared with the run."""

from __future__ import annotations

import pytest
from foundation.studies.scaling.analysis import FitRules, analyse
from foundation.studies.scaling.prediction import (
    compare,
    make_prediction,
    read_prediction,
    write_prediction,
)

from tests.studies.scaling.synthetic import data_law, data_points, point


def test_prediction_from_l_of_d_covers_the_truth_beyond_the_grid():
    analysis = analyse([p for p in data_points() if p["n_params"] == 2e6], [], FitRules(n_boot=200))
    record = make_prediction(
        analysis,
        n_params=2e6,
        frames=12800,
        seeds=2,
        point_ids=["n2000000-D12800-conv-seed0", "n2000000-D12800-conv-seed1"],
    )
    assert record["law"] == "L(D)" and record["refused"] is None
    lo, hi = record["interval"]
    assert lo < record["loss"] < hi and lo <= data_law(2e6, 12800) <= hi
    assert record["loss"] == pytest.approx(data_law(2e6, 12800), rel=0.05)
    assert set(record["fitted_on"]) == {
        f"n2000000-D{d}-conv" for d in (100, 200, 400, 800, 1600, 3200)
    }


def test_the_joint_fit_predicts_a_larger_model():
    analysis = analyse(data_points(n_sizes=(2e4, 1e5, 5e5)), [], FitRules(n_boot=60))
    record = make_prediction(analysis, n_params=2e6, frames=3200, seeds=2, point_ids=["big"])
    assert (
        record["law"] == "L(N,D)"
        and record["interval"][0] <= data_law(2e6, 3200) <= record["interval"][1]
    )


def test_no_covering_fit_is_a_refusal_with_the_reason():
    analysis = analyse([p for p in data_points() if p["n_params"] == 2e6], [], FitRules(n_boot=20))
    record = make_prediction(
        analysis, n_params=5e6, frames=3200, seeds=2, point_ids=["x"]
    )  # another model
    assert record["refused"].startswith("no fit covers N=5e+06") and "loss" not in record


def test_written_once_and_compared_with_the_measurement(tmp_path):
    record = {
        "point_ids": ["m-D900-conv-seed0", "m-D900-conv-seed1"],
        "loss": 0.1,
        "interval": [0.08, 0.12],
        "refused": None,
    }
    write_prediction(tmp_path, record)
    with pytest.raises(FileExistsError, match="already made"):
        write_prediction(tmp_path, {**record, "loss": 0.2})
    assert read_prediction(tmp_path) == record
    runs = [point("m", 1e4, 900, s, loss) for s, loss in ((0, 0.13), (1, 0.15))]
    got = compare(record, runs)
    assert (
        got["measured"] == pytest.approx(0.14)
        and not got["inside"]
        and got["ratio"] == pytest.approx(1.4)
    )
    assert got["finished_seeds"] == 2
    assert compare(record, runs[:0]) == {"finished_seeds": 0, "of": 2}
