"""From finished sweep points to the fits their design supports (foundation.studies.scaling.validity).

Points (seed runs) become cells (foundation.studies.scaling.readouts: seed means, spreads, baselines, flags).
Design data_scaling: among the grid cells, L(N) uses those of the data size with the most model sizes (ties:
the largest), L(D) those of the model with the most data sizes (ties: the largest), L(N, D) all of them; each
law is fitted to the combined loss and to every metric, leaving out the cells near the baseline for that
quantity, weighted by the seed spread, and refused (with the reason) when too few cells remain.
Design iso_flop: one profile per budget (foundation.studies.scaling.isoflop) on the combined loss, then
N_opt(C) and L_opt(C) across the budgets whose optimum is bracketed.
Fits the design does not support are refused with the design's reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from foundation.studies.scaling.fit import PowerLawFit, fit_joint, fit_power_law
from foundation.studies.scaling.isoflop import Profile, fit_across_budgets, fit_profile
from foundation.studies.scaling.readouts import (
    COMBINED,
    fit_sigmas,
    make_cells,
    seed_noise_log,
    value,
)
from foundation.studies.scaling.validity import COMPUTE_FITS, DATA_LAWS, design_validity, too_few

__all__ = ["COMBINED", "Analysis", "FitRules", "analyse", "value"]


@dataclasses.dataclass(frozen=True)
class FitRules:
    """How the report reads points: the design, the baseline flag and the least data a fit needs."""

    design: str = "data_scaling"
    baseline_ratio: float = 0.9
    min_points_per_parameter: float = 2.0
    min_distinct: int = 3
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0


@dataclasses.dataclass
class Analysis:
    """Cells, which fits the design allows, the fits made and the ones refused (with reasons)."""

    design: str
    quantities: list[str]
    cells: list[dict]  # grid cells (seed means), flagged ones included
    validity: dict[str, dict[str, Any]]  # fit -> {valid, reason} for this design
    fits: dict[str, dict[str, PowerLawFit]]  # quantity -> {"L(N)": fit, ...} (data_scaling)
    refused: dict[str, dict[str, str]]  # quantity -> {fit: why it was not made}
    selections: dict[str, list[str]]  # law -> cell ids it was fitted on (before baseline flags)
    near_baseline: dict[str, list[str]]  # quantity -> cell ids left out of its fits
    weighted: dict[str, dict[str, bool]]  # quantity -> {law: weighted by the seed spread}
    profiles: list[Profile]  # iso_flop: one per budget with a minimum
    compute_laws: dict[str, dict]  # iso_flop: "N_opt(C)", "L_opt(C)"
    seed_noise: dict[str, float | None]  # quantity -> typical sd of one run's log value over seeds

    def to_json(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "quantities": self.quantities,
            "cells": self.cells,
            "validity": self.validity,
            "fits": {
                q: {law: f.to_json() for law, f in laws.items()} for q, laws in self.fits.items()
            },
            "refused": self.refused,
            "selections": self.selections,
            "near_baseline": self.near_baseline,
            "weighted": self.weighted,
            "profiles": [p.to_json() for p in self.profiles],
            "compute_laws": self.compute_laws,
            "seed_noise": self.seed_noise,
        }


def _richest(cells: Sequence[dict], fixed: str, varied: str) -> list[dict]:
    """The cells sharing the value of `fixed` that covers the most distinct `varied` values (ties: the largest
    `fixed`), so a partly finished grid still gives a 1-D law where it can."""
    groups: dict[float, list[dict]] = {}
    for c in cells:
        groups.setdefault(c[fixed], []).append(c)
    best = max(groups, key=lambda k: (len({c[varied] for c in groups[k]}), k))
    return groups[best]


def data_selections(cells: Sequence[dict]) -> dict[str, list[dict]]:
    return {
        "L(N)": _richest(cells, "frames", "n_params"),
        "L(D)": _richest(cells, "n_params", "frames"),
        "L(N,D)": list(cells),
    }


def _fit_law(
    law: str, cells: Sequence[dict], quantity: str, rules: FitRules
) -> tuple[PowerLawFit, bool]:
    y = [value(c, quantity) for c in cells]
    sigma = fit_sigmas(cells, quantity)
    options = dict(n_boot=rules.n_boot, confidence=rules.confidence, seed=rules.seed, sigma=sigma)
    if law == "L(N,D)":
        return fit_joint(
            [c["n_params"] for c in cells], [c["frames"] for c in cells], y, **options
        ), sigma is not None
    key = "n_params" if law == "L(N)" else "frames"
    return fit_power_law([c[key] for c in cells], y, variable=law[2], **options), sigma is not None


def analyse(
    points: Sequence[dict], metric_names: Sequence[str], rules: FitRules = FitRules()
) -> Analysis:
    """Cells of the grid points (role "grid") and every fit the design and the cells support."""
    grid = [p for p in points if p.get("role", "grid") == "grid"]
    if not grid:
        raise ValueError("no finished grid points to analyse")
    quantities = [COMBINED, *metric_names]
    cells = make_cells(grid, quantities, rules.baseline_ratio)
    validity = design_validity(rules.design, (sum(bool(p.get("hit_cap")) for p in grid), len(grid)))
    analysis = Analysis(
        design=rules.design,
        quantities=quantities,
        cells=cells,
        validity=validity,
        fits={q: {} for q in quantities},
        refused={q: {} for q in quantities},
        selections={},
        near_baseline={
            q: [c["point_id"] for c in cells if c["near_baseline"][q]] for q in quantities
        },
        weighted={q: {} for q in quantities},
        profiles=[],
        compute_laws={},
        seed_noise={q: seed_noise_log(cells, q) for q in quantities},
    )
    for fit, verdict in validity.items():
        if not verdict["valid"]:
            for q in quantities if fit in DATA_LAWS else [COMBINED]:
                analysis.refused[q][fit] = (
                    f"not valid for design {rules.design}: {verdict['reason']}"
                )
    if rules.design == "data_scaling":
        _data_scaling(analysis, rules)
    elif rules.design == "iso_flop":
        _iso_flop(analysis, rules)
    return analysis


def _data_scaling(analysis: Analysis, rules: FitRules) -> None:
    for law, chosen in data_selections(analysis.cells).items():
        analysis.selections[law] = [c["point_id"] for c in chosen]
        for q in analysis.quantities:
            kept = [c for c in chosen if not c["near_baseline"][q]]
            why = too_few(
                law,
                kept,
                min_points_per_parameter=rules.min_points_per_parameter,
                min_distinct=rules.min_distinct,
                left_out=len(chosen) - len(kept),
            )
            if why is not None:
                analysis.refused[q][law] = why
                continue
            analysis.fits[q][law], analysis.weighted[q][law] = _fit_law(law, kept, q, rules)


def _iso_flop(analysis: Analysis, rules: FitRules) -> None:
    budgets: dict[float, list[dict]] = {}
    for c in analysis.cells:
        budgets.setdefault(c["budget"], []).append(c)
    reasons = []
    for budget in sorted(budgets):
        chosen = budgets[budget]
        kept = [c for c in chosen if not c["near_baseline"][COMBINED]]
        why = too_few(
            "iso-FLOP profiles",
            kept,
            min_points_per_parameter=rules.min_points_per_parameter,
            min_distinct=rules.min_distinct,
            left_out=len(chosen) - len(kept),
        )
        profile = why or fit_profile(
            [c["n_params"] for c in kept],
            [c[COMBINED] for c in kept],
            fit_sigmas(kept, COMBINED),
            budget=budget,
            cells=[c["point_id"] for c in kept],
            n_boot=rules.n_boot,
            confidence=rules.confidence,
            seed=rules.seed,
        )
        if isinstance(profile, str):
            reasons.append(f"budget {budget:.3g}: {profile}" if why else profile)
        else:
            analysis.profiles.append(profile)
            if not profile.bracketed:
                reasons.append(
                    f"budget {budget:.3g}: optimum N {profile.n_opt:.3g} outside the scanned sizes (not "
                    "bracketed; left out of N_opt(C) and L_opt(C))"
                )
    if reasons:
        analysis.refused[COMBINED]["iso-FLOP profiles"] = "; ".join(reasons)
    bracketed = [p for p in analysis.profiles if p.bracketed]
    cells = [{"budget": p.budget} for p in bracketed]
    for law, quantity in zip(COMPUTE_FITS[1:], ("n_opt", "loss_opt")):
        why = too_few(
            law,
            cells,
            min_points_per_parameter=rules.min_points_per_parameter,
            min_distinct=rules.min_distinct,
        )
        if why is not None:
            analysis.refused[COMBINED][law] = f"{why} (budgets with a bracketed optimum)"
        else:
            analysis.compute_laws[law] = fit_across_budgets(bracketed, quantity, rules.confidence)
