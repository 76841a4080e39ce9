"""The hierarchical bootstrap on synthetic data whose variance per level is known, and its degenerate levels."""

import numpy as np
import pytest
from foundation.evals.hierarchical import (
    hierarchical_interval,
    level_sizes,
    mean_weights,
    percentile_interval,
    resampling_weights,
    uncovered_levels,
)


def _design(pretraining: int, folds: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    p, f, _ = np.meshgrid(range(pretraining), range(folds), range(seeds), indexing="ij")
    return p.ravel(), f.ravel()


def _synthetic(rng, p, f, sd_pretraining, sd_fold=0.02, sd_cell=0.01, sd_seed=0.01) -> np.ndarray:
    """Paired differences with true mean 0: a pre-training seed effect, a fold effect shared by every
    pre-training seed (the same official folds), their interaction and fine-tuning seed noise."""
    a = rng.normal(0, sd_pretraining, p.max() + 1)
    b = rng.normal(0, sd_fold, f.max() + 1)
    c = rng.normal(0, sd_cell, (p.max() + 1, f.max() + 1))
    return a[p] + b[f] + c[p, f] + rng.normal(0, sd_seed, p.size)


def _coverage_and_width(pretraining, folds, seeds, sd_pretraining, repeats=400):
    p, f = _design(pretraining, folds, seeds)
    weights = resampling_weights(p, f, samples=1000, seed=1)
    rng = np.random.default_rng(7)
    hits, widths = 0, []
    for _ in range(repeats):
        low, high = percentile_interval(weights @ _synthetic(rng, p, f, sd_pretraining))
        hits += low <= 0.0 <= high
        widths.append(high - low)
    return hits / repeats, float(np.mean(widths))


def test_covers_the_truth_at_about_the_nominal_rate_with_every_level_resampled():
    coverage, _ = _coverage_and_width(8, 8, 3, sd_pretraining=0.02)
    assert 0.9 <= coverage <= 0.99


def test_widens_with_the_variance_between_pretraining_seeds():
    _, narrow = _coverage_and_width(8, 8, 3, sd_pretraining=0.0)
    _, wide = _coverage_and_width(8, 8, 3, sd_pretraining=0.04)
    # the pre-training level's share of the mean's variance: 0.04^2 / 8 beside ~0.02^2 / 8 of folds and the rest
    assert wide > 1.6 * narrow


def test_one_pretraining_seed_cannot_see_pretraining_variance_and_says_so():
    _, alone_quiet = _coverage_and_width(1, 8, 3, sd_pretraining=0.0)
    coverage, alone_noisy = _coverage_and_width(1, 8, 3, sd_pretraining=0.04)
    assert alone_noisy == pytest.approx(alone_quiet, rel=0.15)  # blind to it
    assert coverage < 0.5  # so it misses the mean over pre-training seeds
    assert uncovered_levels(*_design(1, 8, 3)) == ["pre-training seeds"]
    assert uncovered_levels(*_design(2, 8, 3)) == []


def test_pretraining_seeds_share_each_drawn_fold():
    """A fold effect common to every pre-training seed is fold variance: it widens the interval as much with
    eight pre-training seeds as with one (independent fold draws per seed would average it away)."""
    rng = np.random.default_rng(3)
    fold_effect = rng.normal(0, 0.05, 5)
    widths = []
    for pretraining in (1, 8):
        p, f = _design(pretraining, 5, 3)
        low, high = hierarchical_interval(fold_effect[f], p, f)
        widths.append(high - low)
    assert widths[1] == pytest.approx(widths[0], rel=0.1)


def test_degenerate_levels():
    # one value: the interval is the value
    assert hierarchical_interval([0.5], [0], [0]) == (0.5, 0.5)
    # one fold and one pre-training seed: only the fine-tuning seeds vary, an ordinary bootstrap of them
    values = np.array([0.1, 0.3, 0.2, 0.6, 0.4])
    low, high = hierarchical_interval(values, [0] * 5, [0] * 5)
    assert low < values.mean() < high and high - low < values.max() - values.min()
    assert uncovered_levels([0] * 5, [0] * 5) == ["pre-training seeds", "folds"]
    # one fine-tuning seed per fold: the folds carry all the variance; an exact constant gives a point
    assert uncovered_levels([0] * 4, [0, 1, 2, 3]) == ["pre-training seeds", "fine-tuning seeds"]
    assert hierarchical_interval([0.2] * 4, [0] * 4, [0, 1, 2, 3]) == pytest.approx((0.2, 0.2))
    with pytest.raises(ValueError):
        resampling_weights([], [])


def test_weights_give_the_mean_of_means_of_an_unbalanced_design():
    # pre-training seed 0: fold 0 with two fine-tuning seeds, fold 1 with one; seed 1: fold 0 with one
    pretraining, folds = [0, 0, 0, 1], [0, 0, 1, 0]
    values = np.array([1.0, 3.0, 4.0, 10.0])
    assert mean_weights(pretraining, folds) @ values == pytest.approx(((2.0 + 4.0) / 2 + 10.0) / 2)
    weights = resampling_weights(pretraining, folds, samples=500, seed=2)
    finite = ~np.isnan(weights).any(axis=1)
    assert np.allclose(weights[finite].sum(axis=1), 1.0)
    assert level_sizes(pretraining, folds) == {
        "pre-training seeds": 2,
        "folds": 2,
        "fine-tuning seeds": 2,
    }
    # a replicate that draws only seed 1 and only fold 1 has no value: it is left out, not zero
    assert np.isnan(weights).any(axis=1).sum() > 0
    low, high = percentile_interval(weights @ values)
    assert 1.0 <= low <= high <= 10.0


def test_fewer_fold_draws_widen_the_interval():
    p, f = _design(1, 3, 3)
    values = _synthetic(np.random.default_rng(5), p, f, 0.0)
    three = percentile_interval(resampling_weights(p, f) @ values)
    two = percentile_interval(resampling_weights(p, f, fold_draws=2) @ values)
    assert two[1] - two[0] > three[1] - three[0]
