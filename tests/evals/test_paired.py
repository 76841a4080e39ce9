"""Paired differences, hierarchical bootstrap intervals and verdicts against values worked out by hand."""

import pytest
from foundation.evals.paired import coverage_note, paired_comparison, verdict


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
    assert small["levels"] == {"pre-training seeds": 1, "folds": 2, "fine-tuning seeds": 3}
    assert small["ratio_ci95"][0] <= small["ratio"] <= small["ratio_ci95"][1]
    assert coverage_note(small) == (
        "one pre-training seed: the interval does not cover pre-training variance"
    )


def _pairs(gaps: dict[int, float]) -> list[dict]:
    """Scratch and pre-trained units of 3 folds x 3 fine-tuning seeds for each pre-training seed, the
    pre-trained arm `gaps[pretraining seed]` better than scratch."""
    units = []
    for pretraining, gap in gaps.items():
        for fold in range(3):
            for seed in range(3):
                base = {"fold": fold, "seed": seed, "size": 100, "pretraining_seed": pretraining}
                scratch = 1.0 + 0.1 * fold + 0.01 * seed
                units.append({**base, "variant": "scratch", "metrics": {"mae": scratch}})
                units.append(
                    {
                        **base,
                        "variant": "pretrained",
                        "metrics": {"mae": scratch - gap + 0.003 * seed},
                    }
                )
    return units


def test_pretraining_seeds_are_a_level_of_the_interval():
    (alone,) = paired_comparison(_pairs({0: 0.05}), "pretrained", "scratch")
    assert alone["verdict"] == "helps" and alone["uncovered"] == ["pre-training seeds"]
    # a second pre-training seed that does not transfer: the pooled interval spans both seeds' effects
    (both,) = paired_comparison(_pairs({0: 0.05, 1: 0.0}), "pretrained", "scratch")
    assert both["pairs"] == 18 and both["uncovered"] == [] and coverage_note(both) == ""
    assert both["mean_difference"] == pytest.approx(-0.025 + 0.003)
    assert both["ci95"][0] < -0.04 and both["ci95"][1] > -0.01
    assert both["ci95"][1] - both["ci95"][0] > 5 * (alone["ci95"][1] - alone["ci95"][0])
