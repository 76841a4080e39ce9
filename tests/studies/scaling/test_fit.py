"""Power-law fits recover the exponents of synthetic losses generated with known laws and noise."""

from __future__ import annotations

import numpy as np
import pytest
from foundation.studies.scaling.fit import fit_joint, fit_power_law


def noisy(loss: np.ndarray, rel: float, seed: int) -> np.ndarray:
    return loss * np.exp(np.random.default_rng(seed).normal(0.0, rel, loss.shape))


@pytest.mark.parametrize("seed", [0, 1])
def test_single_law_recovers_exponent_within_interval(seed):
    n = np.geomspace(1e4, 1e7, 8)
    fit = fit_power_law(
        n, noisy(3.0 * n**-0.3 + 0.05, 0.02, seed), variable="N", n_boot=200, seed=seed
    )
    lo, hi = fit.ci["alpha"]
    assert lo <= 0.3 <= hi
    assert abs(fit.params["alpha"] - 0.3) < 0.06
    assert abs(fit.params["L_inf"] - 0.05) < 0.015
    assert fit.n_boot > 150


def test_data_law_names_its_parameters_and_predicts():
    d = np.geomspace(100, 1e5, 7)
    truth = 0.8 * d**-0.26 + 0.01
    fit = fit_power_law(d, truth, variable="D", n_boot=50)
    assert set(fit.params) == {"B", "beta", "L_inf"}
    assert fit.params["beta"] == pytest.approx(0.26, abs=1e-3)
    np.testing.assert_allclose(fit.predict(d), truth, rtol=1e-4)
    lo, hi = fit.band(d)
    assert np.all(lo <= fit.predict(d) * (1 + 1e-6)) and np.all(hi >= fit.predict(d) * (1 - 1e-6))


@pytest.mark.parametrize("seed", [0, 2])
def test_joint_law_recovers_both_exponents(seed):
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e4, 1e7, 5), np.geomspace(1e2, 1e5, 5)))
    fit = fit_joint(
        n, d, noisy(0.02 + 5 * n**-0.35 + 2 * d**-0.26, 0.02, seed), n_boot=150, seed=seed
    )
    for name, true in (("alpha", 0.35), ("beta", 0.26)):
        lo, hi = fit.ci[name]
        assert lo <= true <= hi, (name, fit.ci[name])
        assert abs(fit.params[name] - true) < 0.05
    assert fit.rmse_log < 0.03


def test_exact_fit_has_no_interval_and_flat_loss_gives_zero_exponent():
    fit = fit_power_law([1e3, 1e4, 1e5], [0.5, 0.3, 0.2], n_boot=20)
    assert fit.ci is None and fit.n_boot == 0 and fit.band(np.array([1e3])) is None
    flat = fit_power_law(np.geomspace(1e3, 1e6, 6), np.full(6, 0.4), n_boot=20)
    np.testing.assert_allclose(flat.predict(np.geomspace(1e3, 1e6, 6)), 0.4, rtol=1e-6)


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3, 4], [0.1, -0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="one length"):
        fit_joint([1, 2], [1, 2, 3], [0.1, 0.2])


def test_sigmas_must_be_finite_and_positive():
    d = np.geomspace(100, 1e5, 7)
    with pytest.raises(ValueError, match="sigma must hold 7 finite positive"):
        fit_power_law(d, 0.8 * d**-0.26, variable="D", n_boot=0, sigma=[0.1] * 6 + [0.0])
