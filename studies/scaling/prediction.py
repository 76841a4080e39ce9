"""A prediction you can check: the loss of one point beyond the grid, from the fits, written before it runs.

`make_prediction` picks the fit that covers the point (L(N, D) when fitted; else L(D) when the point's model is
the one L(D) was fitted on; else L(N) when its data size is L(N)'s), and gives the predicted combined loss with
an interval: the fit's bootstrap curves at the point, each times the seed noise of a mean over the point's
seeds (a normal in log with the grid's typical seed spread / sqrt(seeds)). Without a fit that covers the point,
or without bootstrap samples, the prediction is refused with the reason (and the point is not run).

`write_prediction` writes OUT_DIR/prediction.json once and never overwrites it; `compare` sets the measured
mean over the point's seeds beside it.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from foundation.studies.scaling.analysis import Analysis
from foundation.studies.scaling.readouts import COMBINED

from foundation.files import write_text_atomic

PREDICTION_FILE = "prediction.json"


def _covering_fit(analysis: Analysis, n_params: float, frames: float) -> tuple[str | None, str]:
    fits = analysis.fits[COMBINED]
    if "L(N,D)" in fits:
        return "L(N,D)", ""
    by_id = {c["point_id"]: c for c in analysis.cells}
    for law, fixed, value in (("L(D)", "n_params", n_params), ("L(N)", "frames", frames)):
        chosen = [by_id[i] for i in analysis.selections.get(law, [])]
        if law in fits and chosen and chosen[0][fixed] == value:
            return law, ""
    refused = "; ".join(
        f"{law}: {analysis.refused[COMBINED][law]}"
        for law in ("L(N)", "L(D)", "L(N,D)")
        if law in analysis.refused[COMBINED]
    )
    return None, (
        f"no fit covers N={n_params:.4g}, D={frames:g}: L(N,D) is not fitted, and L(D) / L(N) were fitted "
        f"at another model / data size or not at all ({refused or 'no refusals recorded'})"
    )


def make_prediction(
    analysis: Analysis,
    *,
    n_params: float,
    frames: float,
    seeds: int,
    point_ids: Sequence[str],
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """The prediction record (see the module docstring); `refused` holds the reason when there is none."""
    record: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "point_ids": list(point_ids),
        "n_params": float(n_params),
        "frames": float(frames),
        "seeds": int(seeds),
        "confidence": confidence,
        "fitted_on": {c["point_id"]: c[COMBINED] for c in analysis.cells},
        "refused": None,
    }
    law, why = _covering_fit(analysis, n_params, frames)
    if law is None:
        return {**record, "refused": why}
    fit = analysis.fits[COMBINED][law]
    x = (
        (np.array([n_params]), np.array([frames]))
        if law == "L(N,D)"
        else (np.array([n_params if law == "L(N)" else frames]),)
    )
    if fit.samples.shape[0] < 2:
        return {
            **record,
            "law": law,
            "refused": f"{law} has no bootstrap samples (an exact fit): no interval",
        }
    curves = fit.curves(*x)[:, 0]
    noise = analysis.seed_noise[COMBINED] or 0.0
    rng = np.random.default_rng(seed)
    draws = curves * np.exp(rng.normal(0.0, noise / np.sqrt(max(seeds, 1)), curves.shape))
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return {
        **record,
        "law": law,
        "fit_params": fit.params,
        "loss": float(fit.predict(*x)[0]),
        "interval": [float(lo), float(hi)],
        "seed_noise_log": noise,
        "n_boot": int(fit.samples.shape[0]),
    }


def prediction_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / PREDICTION_FILE


def write_prediction(out_dir: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write OUT_DIR/prediction.json; an existing one is never replaced (a prediction is made once, before its
    point runs): FileExistsError."""
    path = prediction_path(out_dir)
    if path.exists():
        raise FileExistsError(f"{path}: a prediction was already made; delete it to predict again")
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path


def read_prediction(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = prediction_path(out_dir)
    return json.loads(path.read_text()) if path.exists() else None


def compare(record: dict[str, Any], points: Sequence[dict]) -> dict[str, Any]:
    """The prediction beside the measurement: mean and seed sd of the predicted point's combined loss over its
    finished seeds, whether the mean lies inside the interval, and measured / predicted."""
    runs = [p for p in points if p["point_id"] in set(record["point_ids"])]
    out: dict[str, Any] = {"finished_seeds": len(runs), "of": len(record["point_ids"])}
    if not runs or record.get("refused"):
        return out
    losses = np.array([p[COMBINED] for p in runs], float)
    mean = float(losses.mean())
    lo, hi = record["interval"]
    return {
        **out,
        "measured": mean,
        "measured_sd": float(losses.std(ddof=1)) if len(losses) > 1 else None,
        "inside": bool(lo <= mean <= hi),
        "ratio": mean / record["loss"],
        "baseline_loss": (
            float(np.mean([p["baseline_loss"] for p in runs]))
            if all(p.get("baseline_loss") is not None for p in runs)
            else None
        ),
    }
