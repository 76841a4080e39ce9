"""Seed runs -> cells: means, seed spreads, baselines, near-baseline flags, and the sigmas that weight the fits."""

from __future__ import annotations

import numpy as np
import pytest
from foundation.studies.scaling.fit import fit_power_law
from foundation.studies.scaling.readouts import fit_sigmas, make_cells, seed_noise_log

from tests.studies.scaling.synthetic import point


def test_cells_hold_seed_means_spreads_and_baseline_ratios():
    runs = [point("m", 1e4, 100, s, loss) for s, loss in enumerate((0.2, 0.3))]
    runs[1]["baseline_loss"] = 0.28  # one seed's baseline close: the mean ratio decides
    (cell,) = make_cells(runs, ["loss", "forces_mae"], baseline_ratio=0.9)
    assert cell["point_id"] == "m-D100-conv" and cell["runs"] == [
        "m-D100-conv-seed0",
        "m-D100-conv-seed1",
    ]
    assert cell["loss"] == pytest.approx(0.25) and cell["loss_sd"] == pytest.approx(
        np.std([0.2, 0.3], ddof=1)
    )
    assert cell["sigma_log"]["loss"] == pytest.approx(
        np.std(np.log([0.2, 0.3]), ddof=1) / np.sqrt(2)
    )
    base = (runs[0]["baseline_loss"] + 0.28) / 2
    assert cell["baseline_loss"] == pytest.approx(base) and cell["ratio"]["loss"] == pytest.approx(
        0.25 / base
    )
    assert cell["near_baseline"] == {"loss": 0.25 / base > 0.9, "forces_mae": False}
    assert cell["excluded_metrics"]["forces_mae"] == pytest.approx(0.5)
    assert cell["early_stopped"] == 2 and cell["hit_cap"] == 0


def test_missing_baselines_are_not_flags():
    run = point("m", 1e4, 100, 0, 0.2)
    run["baseline_loss"] = None
    (cell,) = make_cells([run], ["loss"], baseline_ratio=0.9)
    assert (
        cell["ratio"]["loss"] is None
        and not cell["near_baseline"]["loss"]
        and cell["sigma_log"]["loss"] is None
    )
    assert fit_sigmas([cell], "loss") is None and seed_noise_log([cell], "loss") is None


def test_sigmas_are_floored_and_the_seed_noise_is_per_run():
    cells = [{"sigma_log": {"loss": s}, "runs": ["a", "b"]} for s in (0.0, 0.01, 0.02, 0.03, None)]
    sigma = fit_sigmas(cells, "loss")
    assert sigma.tolist() == pytest.approx(
        [0.01, 0.01, 0.02, 0.03, 0.02]
    )  # floor: half the median 0.02
    assert seed_noise_log(cells, "loss") == pytest.approx(np.sqrt(2) * 0.015)


def test_seed_spread_weights_keep_a_noisy_cell_from_pulling_the_fit():
    d = np.geomspace(100, 1e5, 8)
    truth = 0.8 * d**-0.3 + 0.01
    runs = []
    for i, (size, loss) in enumerate(zip(d, truth)):
        spread = 0.4 if i == 3 else 0.01  # one cell's seeds disagree wildly, and its mean is off
        for s, sign in enumerate((-1, 1)):
            offset = 1.6 if i == 3 else 1.0
            runs.append(point("m", 1e5, int(size), s, float(loss * offset * np.exp(sign * spread))))
    cells = make_cells(runs, ["loss"], baseline_ratio=0.9)
    x, y = [c["frames"] for c in cells], [c["loss"] for c in cells]
    weighted = fit_power_law(x, y, variable="D", n_boot=0, sigma=fit_sigmas(cells, "loss"))
    unweighted = fit_power_law(x, y, variable="D", n_boot=0)
    assert abs(weighted.params["beta"] - 0.3) < abs(unweighted.params["beta"] - 0.3)
    assert abs(weighted.params["beta"] - 0.3) < 0.05
