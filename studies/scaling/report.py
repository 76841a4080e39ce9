"""The sweep report: results.json (every point and fit), report.md (+ figures/*.png) and a standalone
report.html, rendered with the eval harness's block renderer (foundation.evals.report.render)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from foundation.evals.report import write_report_files
from foundation.evals.report.render import Block
from foundation.studies.scaling.analysis import COMBINED, Analysis, analyse
from foundation.studies.scaling.figures import DISPLAY_NAMES, scaling_figures

FREY_DATA_EXPONENT = 0.26  # Frey et al. 2023, equivariant neural force fields


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _ci(fit, name: str) -> str:
    if fit.ci is None:
        return "exact fit (no interval)"
    lo, hi = fit.ci[name]
    return f"[{_g(lo)}, {_g(hi)}]"


def _fit_rows(analysis: Analysis) -> list[list[str]]:
    rows = []
    for q in analysis.quantities:
        for law, fit in analysis.fits[q].items():
            for name, val in fit.params.items():
                rows.append([DISPLAY_NAMES.get(q, q), law, name, _g(val, 4), _ci(fit, name), str(fit.n_points),
                             _g(fit.rmse_log), f"{fit.n_boot} ({fit.bootstrap})"])
    return rows


def _point_rows(points: Sequence[dict], metric_names: Sequence[str]) -> list[list[str]]:
    return [[p["point_id"], p["model"], str(p["n_params"]), str(p["frames"]), str(p["steps"]), _g(p["flops"]),
             _g(p["device_hours"]), _g(p[COMBINED], 4), *(_g(p["metrics"][m], 4) for m in metric_names)]
            for p in sorted(points, key=lambda p: (p["n_params"], p["frames"], p["steps"]))]


def scaling_report_blocks(results: dict[str, Any], analysis: Analysis | None, figures: Sequence[str]) -> list[Block]:
    """Everything the report says, in order."""
    sweep, points, metric_names = results["sweep"], results["points"], results["metric_names"]
    blocks: list[Block] = [("h", 1, f"Scaling-law sweep: {sweep['name']}")]
    blocks.append(("p", f"{len(points)} finished points, {len(results['failed'])} failed, "
                        f"{len(results['pending'])} not finished. Base training config `{sweep['base_config']}`; "
                        f"data `{sweep['data_source']}` (nested subsets by structure_id, seed {sweep['data_seed']}). "
                        f"Combined loss = {sweep['loss_formula']}. Created {results['created']}."))
    if results["failed"]:
        blocks.append(("p", "**Failed points** (rerun one with `foundation sweep --config ... --retry POINT`):"))
        blocks.append(("table", ["point", "error"], [[f["point_id"], f["error"][:200]] for f in results["failed"]]))
    if analysis is None:
        return blocks + [("p", "No finished points: nothing to fit.")]
    blocks.append(("h", 2, "Fits"))
    blocks.append(("p", "L(N) = A N^-alpha + L_inf over the largest data size; L(D) = B D^-beta + L_inf over the "
                        "largest model (of a partly finished grid: the data size or model with the most points); "
                        "L(N,D) = E + A N^-alpha + B D^-beta over every point of the largest budget. Least "
                        f"squares on log losses, several starts; {results['confidence']:.0%} bootstrap "
                        "intervals (pairs bootstrap with at least two points per parameter, else residual). N counts "
                        "parameters, D training frames. With as many points as parameters a fit is exact and has "
                        "no interval."))
    for law, why in analysis.skipped.items():
        blocks.append(("p", f"{law} not fitted: {why}."))
    blocks.append(("table", ["quantity", "law", "parameter", "value", "interval", "points", "rms log residual",
                             "bootstrap fits"], _fit_rows(analysis)))
    data_fit = analysis.fits[COMBINED].get("L(D)") or analysis.fits[COMBINED].get("L(N,D)")
    if data_fit is not None:
        beta = data_fit.params["beta"]
        blocks.append(("p", f"Data exponent of the combined loss: beta = {_g(beta)} {_ci(data_fit, 'beta')} "
                            f"({data_fit.form}); Frey et al. (2023) report ~{FREY_DATA_EXPONENT} for equivariant "
                            "neural force fields."))
    for name, caption in (("loss_vs_params", "final validation values against parameter count; the black "
                                             "curve is L(N) with its bootstrap band"),
                          ("loss_vs_data", "against training frames; the black curve is L(D) with its band"),
                          ("joint_fit", "combined loss against training frames per model size, with the joint "
                                        "fit L(N,D) and its band")):
        if name in figures:
            blocks.append(("fig", name, caption))
    blocks.extend(_compute_blocks(points, analysis, figures))
    blocks.append(("h", 2, "Points"))
    blocks.append(("table", ["point", "model", "N", "D (frames)", "steps", "FLOPs", "device-hours",
                             "combined loss", *metric_names], _point_rows(points, metric_names)))
    blocks.append(("h", 2, "Reproduce"))
    blocks.append(("p", f"`{sweep['command']}`; every number is in results.json."))
    return blocks


def _compute_blocks(points: Sequence[dict], analysis: Analysis, figures: Sequence[str]) -> list[Block]:
    out: list[Block] = [("h", 2, "Compute")]
    out.append(("p", "FLOPs: one training step (forward with the force/stress derivatives, loss, backward through "
                     "them) counted by torch.utils.flop_counter on a representative batch, times the steps. The "
                     "counter counts matmul-like ops only, so message passing's gathers and scatters are not in it. "
                     f"Total over the sweep: {_g(sum(p['flops'] for p in points))} FLOPs, "
                     f"{_g(sum(p['device_hours'] for p in points))} device-hours (wall time x devices)."))
    if "compute_frontier" in figures:
        out.append(("fig", "compute_frontier", "combined loss against training FLOPs; the step line is the best "
                                               "loss reached within each budget"))
    if analysis.flops_model is not None:
        fm = analysis.flops_model
        out.append(("p", f"Training FLOPs per frame = {_g(fm.coefficient)} N^{_g(fm.exponent)} (fitted to the "
                         f"measured sizes). The sweep's median number of passes over its data: {_g(analysis.epochs)}."))
    if analysis.allocation:
        ex = analysis.allocation_exponents
        ci = ex["ci"] or {}
        interval = {k: f"[{_g(v[0])}, {_g(v[1])}]" for k, v in ci.items()}
        out.append(("p", f"Implied by the joint fit at C = passes x D x FLOPs-per-frame(N): N_opt ~ C^"
                         f"{_g(ex['n_opt_exponent'])} {interval.get('n_opt_exponent', '')}, D_opt ~ C^"
                         f"{_g(ex['d_opt_exponent'])} {interval.get('d_opt_exponent', '')}. Budgets beyond the "
                         "measured ones are extrapolations of the fit; 'at search bound' marks an optimum the fit "
                         "pushes to the edge of the searched N range (1e2 to 1e12), i.e. no interior optimum."))
        out.append(("table", ["FLOP budget", "optimal N", "optimal D (frames)", "predicted loss", "at search bound"],
                    [[_g(r["flops"]), _g(r["n_params"]), _g(r["frames"]), _g(r["loss"], 4), str(r["at_bound"])]
                     for r in analysis.allocation]))
    return out


def write_scaling_report(results: dict[str, Any], out_dir: str | os.PathLike, *, n_boot: int = 500,
                         seed: int = 0) -> dict[str, Path]:
    """Fit, plot and write results.json, report.md (figures/*.png) and report.html into out_dir."""
    points = results["points"]
    analysis = (analyse(points, results["metric_names"], n_boot=n_boot, confidence=results["confidence"], seed=seed)
                if points else None)
    figures = scaling_figures(points, analysis) if analysis is not None else {}
    full = {**results, "analysis": None if analysis is None else analysis.to_json()}
    return write_report_files(out_dir, full, scaling_report_blocks(results, analysis, list(figures)), figures,
                              title=f"scaling sweep: {results['sweep']['name']}")
