"""Which fits a study design supports, and whether a fit has enough points to be made at all.

A fitted form only means something when the points obey its assumptions:
  L(N), L(D), L(N, D) = E + A N^-alpha + B D^-beta describe the loss reached at convergence on D frames by a
      model of N parameters: valid for design data_scaling (every point trained to early stopping).
  iso-FLOP profiles (a parabola in log N per budget), N_opt(C), L_opt(C): the Chinchilla approach, which
      needs points at matched compute and no convergence: valid for design iso_flop.
  fixed_steps: every point ran the same number of steps, so passes over the data shrink as D grows; neither
      form describes it.
A fit that is valid for the design is still refused when its points cannot pin its parameters: fewer cells
than `min_points_per_parameter` x parameters, or fewer than `min_distinct` distinct values of a scanned
variable. The report prints the reason instead of intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DATA_LAWS = ("L(N)", "L(D)", "L(N,D)")
COMPUTE_FITS = ("iso-FLOP profiles", "N_opt(C)", "L_opt(C)")
PARAMETERS = {
    "L(N)": 3,
    "L(D)": 3,
    "L(N,D)": 5,
    "iso-FLOP profiles": 3,
    "N_opt(C)": 2,
    "L_opt(C)": 2,
}
SCANNED = {
    "L(N)": ("n_params",),
    "L(D)": ("frames",),
    "L(N,D)": ("n_params", "frames"),
    "iso-FLOP profiles": ("n_params",),
    "N_opt(C)": ("budget",),
    "L_opt(C)": ("budget",),
}
VARIABLE_NAMES = {"n_params": "model sizes", "frames": "data sizes", "budget": "compute budgets"}

_WHY = {
    "data_scaling": (
        "the points are trained to convergence on their subsets, not at matched compute, so they "
        "trace no iso-FLOP profile and no compute-optimal frontier (use design iso_flop)"
    ),
    "iso_flop": (
        "the points stop where their compute budget ends, not at convergence, so their losses depend on "
        "the budget as well as on N and D (use design data_scaling)"
    ),
    "fixed_steps": (
        "every point ran the same number of steps, so data size and passes over the data move "
        "together (no fitted form describes that), and no point is at matched compute; use design "
        "data_scaling or iso_flop"
    ),
}


def design_validity(design: str, at_cap: tuple[int, int] = (0, 0)) -> dict[str, dict[str, object]]:
    """{fit: {"valid": bool, "reason": why it is or is not valid for the design}} for every fit the report knows.
    `at_cap`: (runs that ended at their pass cap instead of by early stopping, runs) of a data_scaling study."""
    valid = {"data_scaling": DATA_LAWS, "iso_flop": COMPUTE_FITS, "fixed_steps": ()}[design]
    converged = "every point trained to convergence (early stopping on the validation split)"
    if at_cap[0]:
        converged = (
            f"every point trained to early stopping on the validation split or to its pass cap: {at_cap[0]} "
            f"of {at_cap[1]} runs ended at the cap, where the loss may still have been falling (their "
            f"losses may sit above the converged ones, most at large D, which biases exponents low)"
        )
    out: dict[str, dict[str, object]] = {}
    for fit in DATA_LAWS + COMPUTE_FITS:
        if fit in valid:
            reason = (
                converged
                if design == "data_scaling"
                else "points at matched compute within each budget"
            )
            out[fit] = {"valid": True, "reason": reason}
        else:
            out[fit] = {"valid": False, "reason": _WHY[design]}
    return out


def too_few(
    fit: str,
    cells: Sequence[dict],
    *,
    min_points_per_parameter: float,
    min_distinct: int,
    left_out: int = 0,
) -> str | None:
    """Why `cells` cannot support `fit` (None when they can): too few cells for its parameters, or too few
    distinct values of a scanned variable. `left_out`: cells near baseline already removed (named in the reason)."""
    k = PARAMETERS[fit]
    need = math.ceil(min_points_per_parameter * k)
    dropped = f" ({left_out} more left out near the baseline)" if left_out else ""
    if len(cells) < need:
        return (
            f"{len(cells)} cells{dropped} for {k} parameters; the fit needs at least {need} "
            f"({min_points_per_parameter:g} per parameter)"
        )
    for variable in SCANNED[fit]:
        distinct = len({c[variable] for c in cells})
        if distinct < min_distinct:
            return (
                f"{distinct} distinct {VARIABLE_NAMES[variable]}{dropped}; the fit needs at least "
                f"{min_distinct}"
            )
    return None
