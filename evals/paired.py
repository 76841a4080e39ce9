"""Paired comparisons of two arms (pre-trained minus scratch, probe on pre-trained minus probe on random
features): per (fold, seed, training size) differences of test MAE, their mean with a bootstrap 95% interval,
and a one-line verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MIN_PAIRS = 6  # below this, no verdict but "no detectable effect": with 6 pairs of one sign, chance gives 3%
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
ARMS = (("pretrained", "scratch"), ("probe_pretrained", "probe_random"))


def bootstrap_interval(
    values: Sequence[float],
    *,
    level: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement); a single value
    gives (value, value)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to bootstrap")
    draws = np.random.default_rng(seed).integers(0, v.size, size=(samples, v.size))
    means = v[draws].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


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


def paired_comparison(
    units: Sequence[Mapping[str, Any]], treatment: str, control: str, metric: str = "mae"
) -> list[dict[str, Any]]:
    """One row per training size: pairs (fold, seed) present in both arms, mean MAE of each arm, the mean
    paired difference treatment - control with its bootstrap 95% interval, the ratio of mean MAEs, the
    verdict. Sizes are ascending with None (the whole training fold) last."""
    cells: dict[Any, dict[tuple[int, int], dict[str, float]]] = {}
    for u in units:
        value = (u.get("metrics") or {}).get(metric)
        if u.get("variant") in (treatment, control) and value is not None:
            cells.setdefault(u.get("size"), {}).setdefault((u["fold"], u["seed"]), {})[
                u["variant"]
            ] = value
    rows = []
    for size in sorted(cells, key=lambda s: (s is None, s or 0)):
        pairs = [
            (c[treatment], c[control])
            for c in cells[size].values()
            if treatment in c and control in c
        ]
        if not pairs:
            continue
        t, c = np.array(pairs).T
        diff = t - c
        interval = bootstrap_interval(diff)
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
                "pairs": len(pairs),
                "treatment_mae": float(t.mean()),
                "control_mae": float(c.mean()),
                "mean_difference": float(diff.mean()),
                "ci95": list(interval),
                "favourable_pairs": int((diff < 0).sum()),
                "ratio": float(t.mean() / c.mean()) if c.mean() else None,
                "verdict": verdict(interval, len(pairs)),
            }
        )
    return rows


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
