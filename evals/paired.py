"""Paired comparisons of two arms (pre-trained minus scratch, probe on pre-trained minus probe on random
features): per (pre-training seed, fold, fine-tuning seed, training size) differences of test MAE, their mean with
a hierarchical bootstrap 95% interval (evals/hierarchical.py), the ratio of the arms' mean MAEs with its interval,
and a one-line verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from foundation.evals.hierarchical import (
    LEVELS,
    level_sizes,
    mean_weights,
    percentile_interval,
    resampling_weights,
    uncovered_levels,
)

MIN_PAIRS = 6  # below this, no verdict but "no detectable effect": with 6 pairs of one sign, chance gives 3%
ARMS = (("pretrained", "scratch"), ("probe_pretrained", "probe_random"))
PRETRAINING_SEED = (
    "pretraining_seed"  # unit key naming its checkpoint's pre-training run (absent: one run)
)


def pretraining_seed_of(unit: Mapping[str, Any]) -> Any:
    """The pre-training run a unit fine-tuned from (0 for the units of a single eval run, which omit it)."""
    return unit.get(PRETRAINING_SEED, 0)


def verdict(interval: tuple[float, float], pairs: int) -> str:
    """'helps' when the interval of (treatment - control) MAE lies below zero, 'hurts' above, else 'no
    detectable effect'; also with fewer than MIN_PAIRS pairs, where a percentile bootstrap interval is too narrow
    to trust (all of 2-4 pairs share a sign by chance 12-50% of the time)."""
    low, high = interval
    if pairs < MIN_PAIRS:
        return "no detectable effect"
    if high < 0:
        return "helps"
    if low > 0:
        return "hurts"
    return "no detectable effect"


def compare_arms(
    treatment: Sequence[float],
    control: Sequence[float],
    pretraining: Sequence[Any],
    folds: Sequence[Any],
) -> dict[str, Any]:
    """Paired values of two arms, one pair per (pre-training seed, fold, fine-tuning seed): each arm's mean MAE
    (mean of means over the levels), the mean difference treatment - control and the ratio treatment / control,
    each with its hierarchical bootstrap 95% interval, the levels' sizes, the levels the interval cannot cover
    (a single member), the verdict."""
    t, c = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    point = mean_weights(pretraining, folds)
    weights = resampling_weights(pretraining, folds)
    boot_t, boot_c = weights @ t, weights @ c
    interval = percentile_interval(boot_t - boot_c)
    t_mean, c_mean = float(point @ t), float(point @ c)
    return {
        "pairs": int(t.size),
        "treatment_mae": t_mean,
        "control_mae": c_mean,
        "mean_difference": t_mean - c_mean,
        "ci95": list(interval),
        "favourable_pairs": int((t < c).sum()),
        "ratio": t_mean / c_mean if c_mean else None,
        "ratio_ci95": list(percentile_interval(boot_t / boot_c)) if c_mean else None,
        "levels": level_sizes(pretraining, folds),
        "uncovered": uncovered_levels(pretraining, folds),
        "verdict": verdict(interval, int(t.size)),
    }


PairedValues = tuple[list[float], list[float], list[Any], list[Any]]


def paired_values(
    units: Sequence[Mapping[str, Any]], treatment: str, control: str, metric: str = "mae"
) -> dict[Any, PairedValues]:
    """Per training size (ascending, None last), the pairs (pre-training seed, fold, fine-tuning seed) present in
    both arms: (treatment values, control values, pre-training seeds, folds)."""
    cells: dict[Any, dict[tuple[Any, int, int], dict[str, float]]] = {}
    for u in units:
        value = (u.get("metrics") or {}).get(metric)
        if u.get("variant") in (treatment, control) and value is not None:
            key = (pretraining_seed_of(u), u["fold"], u["seed"])
            cells.setdefault(u.get("size"), {}).setdefault(key, {})[u["variant"]] = value
    out = {}
    for size in sorted(cells, key=lambda s: (s is None, s or 0)):
        keys = [k for k, c in cells[size].items() if treatment in c and control in c]
        if keys:
            out[size] = (
                [cells[size][k][treatment] for k in keys],
                [cells[size][k][control] for k in keys],
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
    return out


def paired_comparison(
    units: Sequence[Mapping[str, Any]], treatment: str, control: str, metric: str = "mae"
) -> list[dict[str, Any]]:
    """One row per training size (ascending, None last): the pairs of `paired_values` compared by
    `compare_arms`."""
    rows = []
    for size, values in paired_values(units, treatment, control, metric).items():
        n_train = [
            u.get("n_train", 0) + u.get("n_val", 0)
            for u in units
            if u.get("size") == size and u.get("variant") == treatment
        ]
        rows.append(
            {
                "size": size,
                "n_train_mean": float(np.mean(n_train)) if n_train else None,
                "treatment": treatment,
                "control": control,
                **compare_arms(*values),
            }
        )
    return rows


UNCOVERED_NOTES = {
    "pre-training seeds": "one pre-training seed: the interval does not cover pre-training variance",
    "folds": "one fold: the interval does not cover the variance between folds",
    "fine-tuning seeds": "one fine-tuning seed per fold: the interval does not cover the variance between "
    "fine-tuning seeds",
}


def coverage_note(row: Mapping[str, Any]) -> str:
    """What a comparison's interval leaves out ("" when every level has two or more members)."""
    return "; ".join(
        UNCOVERED_NOTES[name] for name in LEVELS if name in (row.get("uncovered") or [])
    )


def task_comparisons(units: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Paired rows of every pair of arms present in `units` (fine-tuning, then probes)."""
    present = {u.get("variant") for u in units}
    return [
        row
        for treatment, control in ARMS
        if {treatment, control} <= present
        for row in paired_comparison(units, treatment, control)
    ]


def size_label(size: int | None) -> str:
    return "all" if size is None else str(size)
