"""From seed runs to grid cells, the unit every fit works on.

A cell is one (model, data size, budget) of the grid: the mean over its seeds of the combined loss and of each
validation metric, their seed spread, the trivial baselines' values (element references only, zero forces,
zero stress: foundation.train.baselines) and whether the cell is too close to them to be fitted. A cell whose
value exceeds `baseline_ratio` x its baseline's (for the combined loss, or for one metric) is flagged for that
quantity and left out of that quantity's fits; the report counts them.

The fits weight a cell by 1/sigma, sigma being the standard error of its mean log value over the seeds
(`sigma_log`); a cell with one seed, or two seeds that agree exactly, has no usable spread, so sigmas are
floored at half the median sigma of the cells fitted together (`fit_sigmas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

COMBINED = "loss"
SIGMA_FLOOR = (
    0.5  # of the median sigma of the cells fitted together (a 2-seed sd is itself very noisy)
)


def value(cell: dict, quantity: str) -> float:
    """The combined loss or one validation metric of a point or cell."""
    return float(cell[COMBINED] if quantity == COMBINED else cell["metrics"][quantity])


def baseline_value(cell: dict, quantity: str) -> float | None:
    """The trivial baselines' value of the combined loss or of one metric, or None when not logged."""
    if quantity == COMBINED:
        return cell.get("baseline_loss")
    return (cell.get("baseline_metrics") or {}).get(quantity)


def cell_key(point: dict) -> tuple:
    return (
        point["model"],
        point["target_frames"],
        point["budget_kind"],
        point["budget"],
        point.get("role", "grid"),
    )


def cell_id(point: dict) -> str:
    """The point id without its seed: xs-D1000-conv."""
    pid = point["point_id"]
    return pid.rsplit("-seed", 1)[0] if "-seed" in pid else pid


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    arr = np.asarray(values, float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def _sigma_log(values: Sequence[float]) -> float | None:
    """Standard error of the mean of log(values) (None with fewer than two seeds)."""
    arr = np.log(np.asarray(values, float))
    return float(arr.std(ddof=1) / np.sqrt(len(arr))) if len(arr) > 1 else None


def make_cells(
    points: Sequence[dict], quantities: Sequence[str], baseline_ratio: float
) -> list[dict]:
    """Seed runs grouped into cells (see the module docstring), in the order their first run appears."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault(cell_key(p), []).append(p)
    cells = []
    for runs in groups.values():
        first = runs[0]
        cell: dict[str, Any] = {
            "point_id": cell_id(first),
            "runs": [p["point_id"] for p in runs],
            "seeds": [p["seed"] for p in runs],
            "model": first["model"],
            "role": first.get("role", "grid"),
            "budget_kind": first["budget_kind"],
            "budget": first["budget"],
            "target_frames": first["target_frames"],
            "n_params": first["n_params"],
            "frames": first["frames"],
            "flops_per_frame": first["flops_per_frame"],
            "frames_per_step": first["frames_per_step"],
            "device_hours": float(sum(p["device_hours"] for p in runs)),
            "early_stopped": sum(bool(p.get("early_stopped")) for p in runs),
            "hit_cap": sum(bool(p.get("hit_cap")) for p in runs),
        }
        for key in ("steps", "flops", "passes"):
            if all(key in p for p in runs):
                cell[key] = float(np.mean([p[key] for p in runs]))
        metric_names = [q for q in quantities if q != COMBINED]
        cell["metrics"] = {m: _mean_sd([p["metrics"][m] for p in runs])[0] for m in metric_names}
        cell["loss"], cell["loss_sd"] = _mean_sd([p[COMBINED] for p in runs])
        cell["sd"] = {q: _mean_sd([value(p, q) for p in runs])[1] for q in quantities}
        cell["sigma_log"] = {q: _sigma_log([value(p, q) for p in runs]) for q in quantities}
        bases = {q: [baseline_value(p, q) for p in runs] for q in quantities}
        cell["baseline_metrics"] = {
            m: float(np.mean(bases[m]))
            for m in metric_names
            if all(b is not None for b in bases[m])
        }
        cell["baseline_loss"] = (
            float(np.mean(bases[COMBINED])) if all(b is not None for b in bases[COMBINED]) else None
        )
        excluded = [p.get("excluded_metrics") or {} for p in runs]
        names = set.intersection(*(set(e) for e in excluded)) if excluded else set()
        cell["excluded_metrics"] = {
            k: float(np.mean([e[k] for e in excluded])) for k in sorted(names)
        }
        cell["ratio"] = {
            q: (value(cell, q) / baseline_value(cell, q) if baseline_value(cell, q) else None)
            for q in quantities
        }
        cell["near_baseline"] = {
            q: r is not None and r > baseline_ratio for q, r in cell["ratio"].items()
        }
        cells.append(cell)
    return cells


def fit_sigmas(cells: Sequence[dict], quantity: str) -> np.ndarray | None:
    """Each cell's sigma of its mean log value for a weighted fit (floored, see the module docstring), or None
    (an unweighted fit) when no cell has a seed spread."""
    raw = [c["sigma_log"].get(quantity) for c in cells]
    positive = [s for s in raw if s is not None and s > 0]
    if not positive:
        return None
    floor = SIGMA_FLOOR * float(np.median(positive))
    return np.array([max(s, floor) if s is not None else float(np.median(positive)) for s in raw])


def seed_noise_log(cells: Sequence[dict], quantity: str) -> float | None:
    """The typical seed-to-seed spread of one run's log value (median over cells of the sd of log values), or None."""
    spreads = [
        s * np.sqrt(len(c["runs"]))
        for c in cells
        if (s := c["sigma_log"].get(quantity)) is not None
    ]
    return float(np.median(spreads)) if spreads else None
