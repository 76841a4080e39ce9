"""Iso-FLOP profiles (the Chinchilla approach that needs no convergence): for each compute budget C, every model
size N trained with C FLOPs; a parabola in x = ln N through ln L (weighted by the seed spread) finds the
budget's optimum N_opt(C) = exp(-b / 2a) and L_opt(C); power laws N_opt = k C^a and L_opt = k C^-b across budgets.

Intervals come from a parametric bootstrap: every cell's mean log loss is redrawn from a normal with its
sigma (the standard error over seeds, at least the pooled one and the parabola's residual scatter) and the
parabola refitted; the power laws are refitted on one bootstrap
optimum of each budget per replicate. An optimum outside the scanned sizes is not bracketed: the profile is
reported, but its optimum is an extrapolation and is left out of the power laws.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass
class Profile:
    """One budget's parabola and its optimum."""

    budget: float
    cells: list[str]
    coefficients: tuple[float, float, float]  # ln L = a x^2 + b x + c, x = ln N
    n_opt: float
    loss_opt: float
    bracketed: bool  # the optimum lies within the scanned model sizes
    confidence: float
    n_opt_samples: np.ndarray = dataclasses.field(repr=False)
    loss_opt_samples: np.ndarray = dataclasses.field(repr=False)

    def interval(self, samples: np.ndarray) -> list[float] | None:
        finite = samples[np.isfinite(samples)]
        if len(finite) < 2:
            return None
        tail = 100 * (1 - self.confidence) / 2
        return [float(v) for v in np.percentile(finite, [tail, 100 - tail])]

    def to_json(self) -> dict:
        return {
            "budget": self.budget,
            "cells": self.cells,
            "coefficients": list(self.coefficients),
            "n_opt": self.n_opt,
            "loss_opt": self.loss_opt,
            "bracketed": self.bracketed,
            "n_opt_ci": self.interval(self.n_opt_samples),
            "loss_opt_ci": self.interval(self.loss_opt_samples),
            "n_boot": int(np.isfinite(self.n_opt_samples).sum()),
        }


def _parabola(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    return np.polyfit(x, y, 2, w=w)


def _optimum(coefficients: np.ndarray) -> tuple[float, float]:
    """(x_opt, y_opt) of a parabola that opens upwards, (nan, nan) otherwise."""
    a, b, c = coefficients
    if not a > 0:
        return float("nan"), float("nan")
    x = -b / (2 * a)
    return float(x), float(c - b * b / (4 * a))


def fit_profile(
    n_params: Sequence[float],
    loss: Sequence[float],
    sigma: Sequence[float] | None,
    *,
    budget: float,
    cells: Sequence[str] = (),
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Profile | str:
    """The budget's profile, or the reason there is none (the parabola does not open upwards)."""
    x, y = np.log(np.asarray(n_params, float)), np.log(np.asarray(loss, float))
    s = None if sigma is None else np.asarray(sigma, float)
    coefficients = _parabola(x, y, None if s is None else 1 / s)
    x_opt, y_opt = _optimum(coefficients)
    if not np.isfinite(x_opt):
        return (
            f"budget {budget:.3g}: the loss has no minimum over the scanned sizes (the parabola in ln N opens "
            f"downwards, curvature {coefficients[0]:.3g}); scan smaller and larger models"
        )
    rng = np.random.default_rng(
        [seed, int(np.log(budget) * 1000)]
    )  # every budget its own noise stream
    # a 2-seed sd is itself noisy: no cell is redrawn with less than the pooled sigma or the parabola's scatter
    scatter = np.sqrt(np.sum((np.polyval(coefficients, x) - y) ** 2) / max(len(y) - 3, 1))
    pooled = float(np.sqrt(np.mean(s**2))) if s is not None else 0.0
    noise = np.maximum(s if s is not None else 0.0, max(pooled, scatter))
    samples = np.full((n_boot, 2), np.nan)
    for b in range(n_boot):
        samples[b] = _optimum(
            _parabola(x, y + rng.normal(0.0, noise), None if s is None else 1 / s)
        )
    return Profile(
        budget=float(budget),
        cells=list(cells),
        coefficients=tuple(float(c) for c in coefficients),
        n_opt=float(np.exp(x_opt)),
        loss_opt=float(np.exp(y_opt)),
        bracketed=bool(x.min() <= x_opt <= x.max()),
        confidence=confidence,
        n_opt_samples=np.exp(samples[:, 0]),
        loss_opt_samples=np.exp(samples[:, 1]),
    )


def fit_across_budgets(
    profiles: Sequence[Profile], quantity: str, confidence: float = 0.95
) -> dict:
    """The power law quantity(C) = coefficient x C^exponent ('n_opt' or 'loss_opt') through the profiles' optima,
    weighted by the spread of their bootstrap optima, with a bootstrap interval of the exponent."""
    c = np.log([p.budget for p in profiles])
    y = np.log([getattr(p, quantity) for p in profiles])
    draws = np.log(np.stack([getattr(p, f"{quantity}_samples") for p in profiles], axis=1))
    spread = np.array([np.nanstd(draws[:, i]) for i in range(len(profiles))])
    w = 1 / spread if np.all(np.isfinite(spread)) and np.all(spread > 0) else None
    slope, intercept = np.polyfit(c, y, 1, w=w)
    usable = draws[np.all(np.isfinite(draws), axis=1)]
    exponents = np.array([np.polyfit(c, row, 1, w=w)[0] for row in usable])
    tail = 100 * (1 - confidence) / 2
    ci = (
        [float(v) for v in np.percentile(exponents, [tail, 100 - tail])]
        if len(exponents) > 1
        else None
    )
    return {
        "quantity": quantity,
        "exponent": float(slope),
        "coefficient": float(np.exp(intercept)),
        "exponent_ci": ci,
        "n_points": len(profiles),
        "n_boot": int(len(exponents)),
        "weighted": w is not None,
        "budgets": [p.budget for p in profiles],
    }
