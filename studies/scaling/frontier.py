"""The compute-optimal frontier and the model/data sizes a joint fit implies for a FLOP budget.

Measured side: every sweep point has (FLOPs, loss); the frontier is the best loss reached within each
budget, i.e. the points that beat every cheaper point.

Implied side: training on D frames for `epochs` passes costs C = epochs * D * f(N) FLOPs, where
f(N) = c N^gamma is the training cost of one frame (forward, force/stress double backward, backward),
fitted to the FLOP counts measured for each model size. Minimising the joint fit
L = E + A N^-alpha + B D^-beta along C = const gives N_opt ~ C^(beta / (alpha + gamma beta)) and
D_opt ~ C^(alpha / (alpha + gamma beta)); the optimum for a given budget is found numerically.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from foundation.studies.scaling.fit import PowerLawFit


def pareto_frontier(flops: Sequence[float], loss: Sequence[float]) -> np.ndarray:
    """Indices of the points that reach a lower loss than every cheaper point, cheapest first."""
    flops_arr, loss_arr = np.asarray(flops, float), np.asarray(loss, float)
    order = np.lexsort((loss_arr, flops_arr))
    keep, best = [], np.inf
    for i in order:
        if loss_arr[i] < best:
            keep.append(int(i))
            best = loss_arr[i]
    return np.array(keep, dtype=int)


def best_loss_within(flops: Sequence[float], loss: Sequence[float], budgets: Sequence[float]) -> np.ndarray:
    """For each budget, the lowest loss of any point that cost at most that much (nan if none did)."""
    flops_arr, loss_arr = np.asarray(flops, float), np.asarray(loss, float)
    return np.array([loss_arr[flops_arr <= b].min() if np.any(flops_arr <= b) else np.nan for b in budgets])


@dataclasses.dataclass(frozen=True)
class FlopsModel:
    """Training FLOPs per frame as c N^gamma (N: parameter count)."""

    coefficient: float
    exponent: float

    def per_frame(self, n_params: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.asarray(n_params, float) ** self.exponent

    def to_json(self) -> dict:
        return {"coefficient": self.coefficient, "exponent": self.exponent}


def fit_flops_model(n_params: Sequence[float], flops_per_frame: Sequence[float]) -> FlopsModel:
    """Least-squares line in log-log space through the measured per-frame training FLOPs."""
    n_arr, f_arr = np.asarray(n_params, float), np.asarray(flops_per_frame, float)
    if len(np.unique(n_arr)) < 2:
        raise ValueError("need at least two model sizes to fit how FLOPs grow with parameters")
    slope, intercept = np.polyfit(np.log(n_arr), np.log(f_arr), 1)
    return FlopsModel(coefficient=float(np.exp(intercept)), exponent=float(slope))


def allocation_exponents(alpha: float, beta: float, gamma: float) -> tuple[float, float]:
    """(a, b) with N_opt ~ C^a and D_opt ~ C^b for L = E + A N^-alpha + B D^-beta, C ~ N^gamma D."""
    denom = alpha + gamma * beta
    return beta / denom, alpha / denom


def optimal_allocation(joint: PowerLawFit, flops_model: FlopsModel, budgets: Sequence[float],
                       epochs: float, n_range: tuple[float, float] = (1e2, 1e12)) -> list[dict]:
    """For each FLOP budget, the N and D that minimise the joint fit at that cost, and the loss there."""
    if joint.form != "L(N,D)":
        raise ValueError(f"optimal_allocation needs the joint L(N,D) fit, got {joint.form}")
    rows = []
    for budget in budgets:
        def data_for(log_n: float) -> float:
            return budget / (epochs * float(flops_model.per_frame(np.exp(log_n))))

        def objective(log_n: float) -> float:
            return float(np.log(joint.predict(np.exp(log_n), data_for(log_n))))

        best = minimize_scalar(objective, bounds=np.log(n_range), method="bounded")
        n_opt = float(np.exp(best.x))
        rows.append({"flops": float(budget), "n_params": n_opt, "frames": data_for(best.x),
                     "loss": float(np.exp(best.fun)), "at_bound": bool(np.isclose(best.x, np.log(n_range)).any())})
    return rows


def allocation_summary(joint: PowerLawFit, flops_model: FlopsModel) -> dict:
    """Exponents of N_opt(C) and D_opt(C), with bootstrap intervals from the joint fit's samples."""
    a, b = allocation_exponents(joint.params["alpha"], joint.params["beta"], flops_model.exponent)
    out = {"n_opt_exponent": a, "d_opt_exponent": b, "ci": None}
    if joint.samples.shape[0] > 0:
        pairs = np.array([allocation_exponents(s[2], s[4], flops_model.exponent)
                          for s in joint.samples if s[2] + s[4] > 0])
        tail = 100 * (1 - joint.confidence) / 2
        lo, hi = np.percentile(pairs, [tail, 100 - tail], axis=0)
        out["ci"] = {"n_opt_exponent": [float(lo[0]), float(hi[0])], "d_opt_exponent": [float(lo[1]), float(hi[1])]}
    return out
