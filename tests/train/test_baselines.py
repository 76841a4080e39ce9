"""The pre-training baseline check: ratios of model to trivial-baseline MAE, and when a run is flagged."""

import pytest

from foundation.train.baselines import baseline_check


def test_a_run_clearly_below_its_baselines_passes():
    check = baseline_check({"energy_mae": 0.02, "energy_baseline_mae": 0.2, "forces_mae": 0.1,
                            "forces_baseline_mae": 0.5, "loss": 1.0})
    assert check["available"] and not check["flagged"]
    assert check["terms"]["forces"]["ratio"] == pytest.approx(0.2)


def test_a_run_near_its_baselines_is_flagged_by_term():
    check = baseline_check({"energy_mae": 0.19, "energy_baseline_mae": 0.2, "forces_mae": 0.1,
                            "forces_baseline_mae": 0.5})
    assert check["flagged"] and "energy (0.95)" in check["message"] and "forces" not in check["message"]


def test_a_record_without_baselines_is_not_judged():
    check = baseline_check({"energy_mae": 0.1, "loss": 1.0})
    assert not check["available"] and not check["flagged"]
