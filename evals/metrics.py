"""Regression metrics per fold (MAE, RMSE, R^2) and their mean and standard deviation over folds and seeds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

METRICS = ("mae", "rmse", "r2")


def _pair(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"targets ({t.size}) and predictions ({p.size}) differ in length")
    if t.size == 0:
        raise ValueError("no values to score")
    return t, p


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def r2(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (nan when the targets are constant)."""
    t, p = _pair(y_true, y_pred)
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((p - t) ** 2)) / ss_tot


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """{'mae', 'rmse', 'r2', 'n'} of one fold's test predictions."""
    return {
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "r2": r2(y_true, y_pred),
        "n": int(np.asarray(y_true).size),
    }


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean and population standard deviation (numpy's default, ddof=0, as Matbench reports) and count."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "count": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "count": int(v.size)}


def aggregate(
    per_unit: Sequence[Mapping[str, float]], keys: Sequence[str] = METRICS
) -> dict[str, dict[str, float]]:
    """Mean/std of each metric over every (fold, seed) unit, e.g. {'mae': {'mean', 'std', 'count'}}; missing and
    None (non-finite when written) values are left out of the count."""
    return {k: mean_std(u[k] for u in per_unit if u.get(k) is not None) for k in keys}


def property_baselines(
    train_targets: Sequence[float], test_targets: Sequence[float]
) -> dict[str, dict[str, float]]:
    """Metrics of the trivial predictors on a test fold: the training targets' mean and median for every
    structure ({'mean': regression_metrics, 'median': regression_metrics})."""
    train = np.asarray(train_targets, dtype=np.float64)
    test = np.asarray(test_targets, dtype=np.float64)
    return {
        name: regression_metrics(test, np.full(test.shape, value))
        for name, value in (("mean", float(train.mean())), ("median", float(np.median(train))))
    }


def scored_test_fold(
    ids: Sequence[str],
    targets: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    pred: np.ndarray,
) -> dict[str, object]:
    """A unit's scores on its test fold: metrics, the trivial predictors' metrics beside them, and the
    predictions by structure id (`ids` are the test fold's, in the order of `test_idx`)."""
    return {
        "metrics": regression_metrics(targets[test_idx], pred),
        "baselines": property_baselines(targets[train_idx], targets[test_idx]),
        "predictions": {
            "ids": list(ids),
            "y_true": targets[test_idx].tolist(),
            "y_pred": np.asarray(pred).tolist(),
        },
    }
