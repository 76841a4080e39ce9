"""Iso-FLOP profiles recover the optimum of synthetic losses drawn from a known parabola and known power laws."""

from __future__ import annotations

import numpy as np
import pytest
from foundation.studies.scaling.analysis import FitRules, analyse
from foundation.studies.scaling.isoflop import fit_across_budgets, fit_profile

from tests.studies.scaling.synthetic import isoflop_law, isoflop_points


def test_one_profile_finds_the_parabolas_minimum():
    n = np.geomspace(1e3, 1e6, 7)
    loss = 0.3 * np.exp(0.2 * np.log(n / 2e4) ** 2)
    profile = fit_profile(n, loss, None, budget=1e12, n_boot=50)
    assert profile.n_opt == pytest.approx(2e4, rel=1e-6) and profile.loss_opt == pytest.approx(
        0.3, rel=1e-6
    )
    assert profile.bracketed
    shifted = fit_profile(n, 0.3 * np.exp(0.2 * np.log(n / 1e8) ** 2), None, budget=1e12, n_boot=10)
    assert not shifted.bracketed and shifted.n_opt == pytest.approx(1e8, rel=1e-4)


def test_a_profile_that_curves_down_has_no_minimum():
    n = np.geomspace(1e3, 1e6, 6)
    why = fit_profile(n, 0.3 * np.exp(-0.2 * np.log(n / 2e4) ** 2), None, budget=1e12, n_boot=10)
    assert isinstance(why, str) and "no minimum" in why


def test_analysis_recovers_n_opt_and_l_opt_power_laws():
    analysis = analyse(isoflop_points(), ["forces_mae"], FitRules(design="iso_flop", n_boot=200))
    assert len(analysis.profiles) == 4 and all(p.bracketed for p in analysis.profiles)
    covered = 0
    for p in analysis.profiles:
        truth = 0.5 * p.budget**0.5
        assert p.n_opt == pytest.approx(truth, rel=0.05)
        assert p.loss_opt == pytest.approx(isoflop_law(truth, p.budget), rel=0.01)
        lo, hi = p.to_json()["n_opt_ci"]
        covered += lo <= truth <= hi
    assert covered >= 3  # 95% intervals: one of four may miss
    n_law, l_law = analysis.compute_laws["N_opt(C)"], analysis.compute_laws["L_opt(C)"]
    assert n_law["exponent"] == pytest.approx(0.5, abs=0.03) and l_law["exponent"] == pytest.approx(
        -0.1, abs=0.005
    )
    assert n_law["exponent_ci"][0] <= 0.5 <= n_law["exponent_ci"][1]
    assert l_law["exponent_ci"][0] <= -0.1 <= l_law["exponent_ci"][1]
    assert not analysis.fits["loss"] and "L(N,D)" in analysis.refused["loss"]


def test_too_few_budgets_or_sizes_are_refused_with_the_reason():
    three = analyse(
        isoflop_points(budgets=(1e10, 1e11, 1e12)), [], FitRules(design="iso_flop", n_boot=20)
    )
    assert len(three.profiles) == 3 and not three.compute_laws
    assert three.refused["loss"]["N_opt(C)"].startswith(
        "3 cells for 2 parameters; the fit needs at least 4"
    )
    narrow = analyse(isoflop_points(per_budget=4), [], FitRules(design="iso_flop", n_boot=20))
    assert (
        not narrow.profiles
        and "4 cells for 3 parameters" in narrow.refused["loss"]["iso-FLOP profiles"]
    )


def test_power_law_across_budgets_is_exact_on_exact_optima():
    class P:  # a stand-in profile
        def __init__(self, c):
            self.budget, self.n_opt = c, 2 * c**0.4
            self.n_opt_samples = self.n_opt * np.exp(
                np.random.default_rng(int(c) % 97).normal(0, 0.01, 50)
            )

    fit = fit_across_budgets([P(c) for c in (1e9, 1e10, 1e11, 1e12)], "n_opt")
    assert fit["exponent"] == pytest.approx(0.4) and fit["coefficient"] == pytest.approx(2.0)
