"""From finished sweep points to fits: which points each law is fitted on, the fits, the frontier.

A point is a dict with at least: `point_id`, `n_params`, `frames` (training frames), `steps`, `flops`,
`flops_per_frame`, `frames_per_step` and `metrics` ({name: final validation value}); `loss` is the
combined loss. Among the points of the largest budget, L(N) uses those of the largest data size (of the
data sizes with the most model sizes finished), L(D) those of the largest model (likewise), and the joint
L(N, D) all of them.
Each law is fitted to the combined loss and to every metric named in `metrics`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from foundation.studies.scaling.fit import PowerLawFit, fit_joint, fit_power_law
from foundation.studies.scaling.frontier import (FlopsModel, allocation_summary, fit_flops_model, optimal_allocation,
                                    pareto_frontier)

COMBINED = "loss"


@dataclasses.dataclass
class Analysis:
    """Fits by quantity ('loss' or a metric name) and law, the frontier and the implied allocation."""

    quantities: list[str]
    fits: dict[str, dict[str, PowerLawFit]]     # quantity -> {"L(N)": fit, "L(D)": fit, "L(N,D)": fit}
    skipped: dict[str, str]                     # law -> why it was not fitted
    selections: dict[str, list[str]]            # law -> point ids it was fitted on
    frontier: list[str]                         # point ids on the measured frontier, cheapest first
    flops_model: FlopsModel | None
    epochs: float | None
    allocation: list[dict]
    allocation_exponents: dict | None

    def to_json(self) -> dict[str, Any]:
        return {"quantities": self.quantities,
                "fits": {q: {law: f.to_json() for law, f in laws.items()} for q, laws in self.fits.items()},
                "skipped": self.skipped, "selections": self.selections, "frontier": self.frontier,
                "flops_model": None if self.flops_model is None else self.flops_model.to_json(),
                "epochs_assumed": self.epochs, "allocation": self.allocation,
                "allocation_exponents": self.allocation_exponents}


def value(point: dict, quantity: str) -> float:
    """The combined loss or one validation metric of a point."""
    return float(point[COMBINED] if quantity == COMBINED else point["metrics"][quantity])


def _richest(points: Sequence[dict], fixed: str, varied: str) -> list[dict]:
    """The points sharing the value of `fixed` that covers the most distinct `varied` values (ties: the
    largest `fixed`), so a partly finished grid still gives a 1-D law where it can."""
    groups: dict[float, list[dict]] = {}
    for p in points:
        groups.setdefault(p[fixed], []).append(p)
    best = max(groups, key=lambda k: (len({p[varied] for p in groups[k]}), k))
    return groups[best]


def _select(points: Sequence[dict]) -> dict[str, list[dict]]:
    top_budget = max(p["steps"] for p in points)
    at_budget = [p for p in points if p["steps"] == top_budget]
    return {"L(N)": _richest(at_budget, "frames", "n_params"), "L(D)": _richest(at_budget, "n_params", "frames"),
            "L(N,D)": at_budget}


def analyse(points: Sequence[dict], metric_names: Sequence[str], *, n_boot: int = 500, confidence: float = 0.95,
            seed: int = 0) -> Analysis:
    """Fit every law that the points can support to the combined loss and to each metric."""
    if not points:
        raise ValueError("no finished sweep points to analyse")
    quantities = [COMBINED, *metric_names]
    selections = _select(points)
    need = {"L(N)": ("n_params", 3), "L(D)": ("frames", 3)}
    fits: dict[str, dict[str, PowerLawFit]] = {q: {} for q in quantities}
    skipped: dict[str, str] = {}
    for law, chosen in selections.items():
        if law in need:
            key, minimum = need[law]
            distinct = len({p[key] for p in chosen})
            if distinct < minimum:
                skipped[law] = f"{distinct} distinct {key} values; the law needs at least {minimum}"
                continue
        else:
            n_distinct, d_distinct = len({p["n_params"] for p in chosen}), len({p["frames"] for p in chosen})
            if n_distinct < 2 or d_distinct < 2 or len(chosen) < 6:
                skipped[law] = (f"{len(chosen)} points over {n_distinct} model and {d_distinct} data sizes; "
                                "the joint law needs at least 2 x 2 sizes and 6 points")
                continue
        for q in quantities:
            y = [value(p, q) for p in chosen]
            if law == "L(N,D)":
                fits[q][law] = fit_joint([p["n_params"] for p in chosen], [p["frames"] for p in chosen], y,
                                         n_boot=n_boot, confidence=confidence, seed=seed)
            else:
                key = need[law][0]
                fits[q][law] = fit_power_law([p[key] for p in chosen], y, variable=law[2], n_boot=n_boot,
                                             confidence=confidence, seed=seed)
    frontier = [points[i]["point_id"] for i in pareto_frontier([p["flops"] for p in points],
                                                                [p[COMBINED] for p in points])]
    flops_model, epochs, allocation, exponents = _allocation(points, fits[COMBINED].get("L(N,D)"))
    return Analysis(quantities=quantities, fits=fits, skipped=skipped,
                    selections={law: [p["point_id"] for p in chosen] for law, chosen in selections.items()},
                    frontier=frontier, flops_model=flops_model, epochs=epochs, allocation=allocation,
                    allocation_exponents=exponents)


def _allocation(points: Sequence[dict], joint: PowerLawFit | None):
    """FLOPs per frame against N, the passes over the data the sweep made, and the implied optimum."""
    sizes = {p["n_params"]: p["flops_per_frame"] for p in points}
    if len(sizes) < 2:
        return None, None, [], None
    flops_model = fit_flops_model(list(sizes), list(sizes.values()))
    epochs = float(np.median([p["steps"] * p["frames_per_step"] / p["frames"] for p in points]))
    if joint is None:
        return flops_model, epochs, [], None
    measured = [p["flops"] for p in points]
    budgets = np.geomspace(min(measured), 1000 * max(measured), 7)
    return (flops_model, epochs, optimal_allocation(joint, flops_model, budgets, epochs),
            allocation_summary(joint, flops_model))
