"""Paired differences, bootstrap intervals and verdicts against values worked out by hand."""

import numpy as np
import pytest
from foundation.evals.paired import bootstrap_interval, paired_comparison, verdict


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_pairs():
    rng = np.random.default_rng(1)
    few, many = rng.normal(-1.0, 1.0, 6), rng.normal(-1.0, 1.0, 600)
    lo, hi = bootstrap_interval(few)
    assert lo < few.mean() < hi
    lo2, hi2 = bootstrap_interval(many)
    assert hi2 - lo2 < (hi - lo) / 3 and lo2 < -1.0 < hi2
    assert bootstrap_interval([0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_verdicts():
    assert verdict((-0.02, -0.01), 6) == "helps"
    assert verdict((0.01, 0.02), 6) == "hurts"
    assert verdict((-0.01, 0.01), 6) == "no detectable effect"
    assert (
        verdict((-0.02, -0.01), 5) == "no detectable effect"
    )  # too few pairs to trust an interval


def test_paired_rows_pair_by_fold_and_seed_per_size():
    units = []
    for size, gap in ((100, -0.05), (None, 0.0)):
        for fold in range(2):
            for seed in range(3):
                scratch = 1.0 + 0.1 * fold + 0.01 * seed
                units.append(
                    {
                        "variant": "scratch",
                        "fold": fold,
                        "seed": seed,
                        "size": size,
                        "metrics": {"mae": scratch},
                        "n_train": 90,
                        "n_val": 10,
                    }
                )
                units.append(
                    {
                        "variant": "pretrained",
                        "fold": fold,
                        "seed": seed,
                        "size": size,
                        "metrics": {"mae": scratch + gap + (0.001 * seed if size else 0.0)},
                        "n_train": 90,
                        "n_val": 10,
                    }
                )
    units.append(
        {"variant": "pretrained", "fold": 5, "seed": 0, "size": 100, "metrics": {"mae": 9.0}}
    )  # unpaired
    rows = paired_comparison(units, "pretrained", "scratch")
    assert [r["size"] for r in rows] == [100, None]
    small, full = rows
    assert small["pairs"] == 6 and small["mean_difference"] == pytest.approx(-0.05 + 0.001)
    assert small["verdict"] == "helps" and small["favourable_pairs"] == 6
    assert full["mean_difference"] == 0.0 and full["verdict"] == "no detectable effect"
    assert full["ratio"] == pytest.approx(1.0)
