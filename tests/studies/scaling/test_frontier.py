"""The measured frontier and the allocation implied by a joint fit and a FLOP model."""

from __future__ import annotations

import numpy as np
import pytest

from foundation.studies.scaling.fit import fit_joint
from foundation.studies.scaling.frontier import (allocation_exponents, allocation_summary, best_loss_within, fit_flops_model,
                                    optimal_allocation, pareto_frontier)


def test_pareto_frontier_keeps_points_better_than_every_cheaper_one():
    flops = [1, 2, 3, 4, 5, 5]
    loss = [0.9, 1.0, 0.5, 0.6, 0.4, 0.3]
    assert pareto_frontier(flops, loss).tolist() == [0, 2, 5]
    np.testing.assert_allclose(best_loss_within(flops, loss, [0.5, 1, 3.5, 10]), [np.nan, 0.9, 0.5, 0.3])


def test_flops_model_recovers_power():
    n = np.array([1e4, 1e5, 1e6])
    model = fit_flops_model(n, 7.0 * n ** 1.1)
    assert model.exponent == pytest.approx(1.1) and model.coefficient == pytest.approx(7.0)
    with pytest.raises(ValueError):
        fit_flops_model([1e4, 1e4], [1.0, 2.0])


def test_optimal_allocation_follows_the_analytic_exponents():
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 1e7, 4), np.geomspace(1e2, 1e5, 4)))
    joint = fit_joint(n, d, 0.01 + 5 * n ** -0.4 + 2 * d ** -0.2, n_boot=30)
    flops = fit_flops_model([1e4, 1e6], [6e4, 6e6])  # 6 N per frame, gamma = 1
    budgets = np.geomspace(1e14, 1e18, 5)
    rows = optimal_allocation(joint, flops, budgets, epochs=2.0)
    a, b = allocation_exponents(joint.params["alpha"], joint.params["beta"], flops.exponent)
    assert a == pytest.approx(0.2 / 0.6, abs=0.02) and b == pytest.approx(0.4 / 0.6, abs=0.02)
    slope_n = np.polyfit(np.log(budgets), np.log([r["n_params"] for r in rows]), 1)[0]
    slope_d = np.polyfit(np.log(budgets), np.log([r["frames"] for r in rows]), 1)[0]
    assert slope_n == pytest.approx(a, abs=0.01) and slope_d == pytest.approx(b, abs=0.01)
    for r in rows:  # every optimum spends exactly its budget and beats a lopsided allocation
        assert 2.0 * r["frames"] * flops.per_frame(r["n_params"]) == pytest.approx(r["flops"], rel=1e-6)
        other_n = r["n_params"] * 10
        assert r["loss"] < joint.predict(other_n, r["flops"] / (2.0 * flops.per_frame(other_n)))
    summary = allocation_summary(joint, flops)
    assert summary["n_opt_exponent"] == pytest.approx(a)
