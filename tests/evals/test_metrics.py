"""Metric functions against values computed by hand."""

import math

import pytest
from foundation.evals.metrics import aggregate, mae, mean_std, r2, regression_metrics, rmse

Y = [1.0, 2.0, 3.0, 4.0]
P = [1.5, 2.0, 2.0, 5.0]  # errors 0.5, 0, -1, 1


def test_mae_rmse_r2_by_hand():
    assert mae(Y, P) == pytest.approx(2.5 / 4)
    assert rmse(Y, P) == pytest.approx(math.sqrt(2.25 / 4))
    # SS_res = 2.25, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert r2(Y, P) == pytest.approx(1 - 2.25 / 5)
    assert r2(Y, Y) == 1.0
    assert math.isnan(r2([2.0, 2.0], [1.0, 3.0]))


def test_regression_metrics_and_errors():
    m = regression_metrics(Y, P)
    assert m["n"] == 4 and m["mae"] == pytest.approx(0.625)
    with pytest.raises(ValueError, match="differ in length"):
        mae([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no values"):
        rmse([], [])


def test_mean_std_over_folds_and_seeds():
    s = mean_std([1.0, 2.0, 3.0, 6.0])
    assert s["mean"] == 3.0 and s["count"] == 4
    assert s["std"] == pytest.approx(math.sqrt((4 + 1 + 0 + 9) / 4))  # population std, as Matbench
    agg = aggregate([{"mae": 1.0, "rmse": 2.0, "r2": 0.5}, {"mae": 3.0, "rmse": 4.0, "r2": 0.7}])
    assert agg["mae"] == {"mean": 2.0, "std": 1.0, "count": 2}
    assert agg["r2"]["mean"] == pytest.approx(0.6)
    assert math.isnan(mean_std([])["mean"])
