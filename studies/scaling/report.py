"""The sweep report: results.json (every point, cell and fit), report.md (+ figures/*.png) and a standalone
report.html, rendered by foundation.report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.studies.scaling.analysis import COMBINED, Analysis, FitRules, analyse
from foundation.studies.scaling.figures import DISPLAY_NAMES, scaling_figures
from foundation.studies.scaling.readouts import baseline_value

from foundation.report import Block, write_report_files

FREY_DATA_EXPONENT = 0.26  # Frey et al. 2023, equivariant neural force fields


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _ci(fit, name: str) -> str:
    if fit.ci is None:
        return "exact fit (no interval)"
    lo, hi = fit.ci[name]
    return f"[{_g(lo)}, {_g(hi)}]"


def _name(q: str) -> str:
    return DISPLAY_NAMES.get(q, q)


def _fit_rows(analysis: Analysis) -> list[list[str]]:
    rows = []
    for q in analysis.quantities:
        for law, fit in analysis.fits[q].items():
            weighted = "seed spread" if analysis.weighted[q].get(law) else "unweighted"
            for name, val in fit.params.items():
                rows.append(
                    [
                        _name(q),
                        law,
                        name,
                        _g(val, 4),
                        _ci(fit, name),
                        str(fit.n_points),
                        weighted,
                        _g(fit.rmse_log),
                    ]
                )
    return rows


def frey_statement(fit) -> str:
    """Frey et al.'s data exponent beside ours, only when our interval is narrow enough to say something."""
    if fit.ci is None:
        return f"No interval on beta ({fit.form} is exact): no comparison with Frey et al. (2023)."
    lo, hi = fit.ci["beta"]
    if hi - lo > FREY_DATA_EXPONENT:
        return (
            f"The interval of beta, [{_g(lo)}, {_g(hi)}], is wider than Frey et al.'s (2023) exponent itself "
            f"(~{FREY_DATA_EXPONENT} for equivariant potentials): too wide to compare."
        )
    verdict = "includes" if lo <= FREY_DATA_EXPONENT <= hi else "excludes"
    return (
        f"Data exponent beta = {_g(fit.params['beta'])} [{_g(lo)}, {_g(hi)}] ({fit.form}); the interval "
        f"{verdict} Frey et al.'s (2023) ~{FREY_DATA_EXPONENT} for equivariant neural force fields."
    )


def _cell_rows(analysis: Analysis, metric_names: Sequence[str]) -> list[list[str]]:
    rows = []
    for c in sorted(analysis.cells, key=lambda c: (c["n_params"], c["frames"], c["budget"])):
        stop = (
            f"{c['early_stopped']} early, {c['hit_cap']} cap"
            if c["budget_kind"] == "converge"
            else "-"
        )
        ratio = c["ratio"][COMBINED]
        rows.append(
            [
                c["point_id"],
                str(c["n_params"]),
                str(c["frames"]),
                str(len(c["runs"])),
                _g(c.get("steps")),
                _g(c.get("passes")),
                stop,
                _g(c.get("flops")),
                f"{_g(c[COMBINED], 4)} ± {_g(c['loss_sd'], 2)}",
                _g(baseline_value(c, COMBINED), 4),
                _g(ratio),
                "yes" if c["near_baseline"][COMBINED] else "",
                *(
                    f"{_g(c['metrics'][m], 4)} ({_g(baseline_value(c, m), 3)})"
                    for m in metric_names
                ),
            ]
        )
    return rows


def _design_blocks(analysis: Analysis, rules: FitRules) -> list[Block]:
    out: list[Block] = [("h", 2, "Design and valid fits")]
    out.append(
        (
            "table",
            ["fit", f"valid for {analysis.design}", "why"],
            [
                [fit, "yes" if v["valid"] else "no", v["reason"]]
                for fit, v in analysis.validity.items()
            ],
        )
    )
    out.append(
        (
            "p",
            f"A fit valid for the design is still refused when its cells cannot pin its parameters: fewer "
            f"than {rules.min_points_per_parameter:g} cells per parameter, or fewer than "
            f"{rules.min_distinct} distinct values of a scanned variable. A cell is a grid point's mean over "
            f"its seeds; its error bar is the seed sd; fits weight it by 1 / (standard error of its mean "
            f"log value). A cell whose value exceeds {rules.baseline_ratio:g} x the trivial baseline's "
            "(element references only, zero forces, zero stress) is flagged and left out of that "
            "quantity's fits.",
        )
    )
    return out


def _readout_blocks(analysis: Analysis, metric_names: Sequence[str]) -> list[Block]:
    out: list[Block] = []
    flagged = analysis.near_baseline
    total = len(analysis.cells)
    out.append(
        (
            "p",
            "Cells near the baseline (left out of the fits): "
            + "; ".join(
                f"{_name(q)}: {len(flagged[q])} of {total}"
                + (f" ({', '.join(flagged[q])})" if flagged[q] else "")
                for q in analysis.quantities
            )
            + ".",
        )
    )
    return out


def _fit_blocks(
    analysis: Analysis, figures: Sequence[str], prediction: dict[str, Any] | None
) -> list[Block]:
    out: list[Block] = [("h", 2, "Fits")]
    if analysis.design == "data_scaling":
        out.append(
            (
                "p",
                "L(N) = A N^-alpha + L_inf over the data size with the most model sizes; L(D) = B D^-beta "
                "+ L_inf over the model with the most data sizes; L(N,D) = E + A N^-alpha + B D^-beta over "
                "every cell. Least squares on log values from several starts; bootstrap intervals (pairs "
                "bootstrap with at least two cells per parameter, else residual). N counts parameters, D "
                "training frames.",
            )
        )
    rows = _fit_rows(analysis)
    if rows:
        out.append(
            (
                "table",
                [
                    "quantity",
                    "law",
                    "parameter",
                    "value",
                    "interval",
                    "cells",
                    "weights",
                    "rms log residual",
                ],
                rows,
            )
        )
    refused = [
        [_name(q), fit, why]
        for q in analysis.quantities
        for fit, why in analysis.refused[q].items()
    ]
    if refused:
        out.append(("p", "**Refused fits** (no numbers are printed for them):"))
        out.append(("table", ["quantity", "fit", "reason"], refused))
    data_fit = analysis.fits[COMBINED].get("L(D)") or analysis.fits[COMBINED].get("L(N,D)")
    if analysis.design == "data_scaling" and data_fit is not None:
        out.append(("p", frey_statement(data_fit)))
    if analysis.design == "iso_flop":
        out.extend(_iso_blocks(analysis))
    for name, caption in (
        (
            "loss_vs_params",
            "validation values against parameter count (seed sd error bars, "
            "hollow: near the baseline, grey x: the trivial baseline); the black "
            "curve is L(N) with its band",
        ),
        (
            "loss_vs_data",
            "against training frames; the black curve is L(D) with its band; red: "
            "the predicted point (interval) and its measurement (star)",
        ),
        (
            "joint_fit",
            "combined loss against training frames per model size, with the joint fit "
            "L(N,D) and its band",
        ),
        (
            "isoflop_profiles",
            "combined loss against N for each compute budget, the parabola in "
            "ln N and its optimum (hollow: not bracketed)",
        ),
        ("compute_optimal", "the profiles' optima against the budget, with the power laws"),
    ):
        if name in figures:
            out.append(("fig", name, caption))
    return out


def _iso_blocks(analysis: Analysis) -> list[Block]:
    out: list[Block] = []
    if analysis.profiles:
        out.append(
            (
                "table",
                ["budget (FLOPs)", "cells", "N_opt", "interval", "L_opt", "interval", "bracketed"],
                [
                    [
                        _g(p.budget),
                        str(len(p.cells)),
                        _g(p.n_opt),
                        _ci_list(j["n_opt_ci"]),
                        _g(p.loss_opt, 4),
                        _ci_list(j["loss_opt_ci"]),
                        "yes" if p.bracketed else "no",
                    ]
                    for p in analysis.profiles
                    for j in [p.to_json()]
                ],
            )
        )
    for law, fit in analysis.compute_laws.items():
        out.append(
            (
                "p",
                f"{law} = {_g(fit['coefficient'])} C^{_g(fit['exponent'])}, exponent interval "
                f"{_ci_list(fit['exponent_ci'])} over {fit['n_points']} budgets.",
            )
        )
    return out


def _ci_list(ci: list[float] | None) -> str:
    return "-" if ci is None else f"[{_g(ci[0])}, {_g(ci[1])}]"


def prediction_blocks(prediction: dict[str, Any] | None) -> list[Block]:
    if prediction is None:
        return []
    out: list[Block] = [("h", 2, "Prediction beyond the grid")]
    where = f"N = {_g(prediction['n_params'])}, D = {_g(prediction['frames'])} ({', '.join(prediction['point_ids'])})"
    if prediction.get("refused"):
        return out + [
            ("p", f"No prediction for {where}: {prediction['refused']}. The point was not run.")
        ]
    comparison = prediction.get("comparison", {})
    out.append(
        (
            "p",
            f"Predicted from {prediction['law']} on {prediction['created']}, before the point ran "
            f"(prediction.json): {where}. Interval: the fit's bootstrap curves times the seed noise of a "
            f"mean over {prediction['seeds']} seeds.",
        )
    )
    measured = comparison.get("measured")
    out.append(
        (
            "table",
            [
                "predicted loss",
                f"{prediction['confidence']:.0%} interval",
                "measured (seed mean ± sd)",
                "inside",
                "measured / predicted",
                "trivial baseline",
                "seeds finished",
            ],
            [
                [
                    _g(prediction["loss"], 4),
                    _ci_list(prediction["interval"]),
                    "-"
                    if measured is None
                    else f"{_g(measured, 4)} ± {_g(comparison.get('measured_sd'), 2)}",
                    "-" if measured is None else ("yes" if comparison["inside"] else "no"),
                    _g(comparison.get("ratio")),
                    _g(comparison.get("baseline_loss"), 4),
                    f"{comparison.get('finished_seeds', 0)} of {comparison.get('of', len(prediction['point_ids']))}",
                ]
            ],
        )
    )
    return out


def _excluded_blocks(analysis: Analysis) -> list[Block]:
    names = sorted({k for c in analysis.cells for k in c["excluded_metrics"] if k.endswith("_mae")})
    if not names:
        return []
    return [
        ("p", "Validation frames of the other sources (not in the validation loss, never fitted):"),
        (
            "table",
            ["cell", *names],
            [
                [c["point_id"], *(_g(c["excluded_metrics"].get(k), 4) for k in names)]
                for c in analysis.cells
            ],
        ),
    ]


def scaling_report_blocks(
    results: dict[str, Any],
    analysis: Analysis | None,
    figures: Sequence[str],
    rules: FitRules,
    prediction: dict[str, Any] | None = None,
) -> list[Block]:
    """Everything the report says, in order."""
    sweep, metric_names = results["sweep"], results["metric_names"]
    points = results["points"]
    blocks: list[Block] = [("h", 1, f"Scaling-law sweep: {sweep['name']} (design {rules.design})")]
    sources = sweep.get("validation_sources") or []
    blocks.append(
        (
            "p",
            f"{len(points)} finished runs, {len(results['failed'])} failed, "
            f"{len(results['pending'])} not finished. Base training config `{sweep['base_config']}`; "
            f"data `{sweep['data_source']}` (nested subsets by structure_id, seed {sweep['data_seed']}). "
            f"Combined loss = {sweep['loss_formula']}, on the validation frames of "
            f"{', '.join(sources) if sources else 'every source'}. Created {results['created']}.",
        )
    )
    if results["failed"]:
        blocks.append(
            (
                "p",
                "**Failed points** (rerun one with `foundation sweep --config ... --retry POINT`):",
            )
        )
        blocks.append(
            (
                "table",
                ["point", "error"],
                [[f["point_id"], f["error"][:200]] for f in results["failed"]],
            )
        )
    if analysis is None:
        return blocks + [("p", "No finished grid points: nothing to fit.")]
    blocks.extend(_design_blocks(analysis, rules))
    blocks.extend(_readout_blocks(analysis, metric_names))
    blocks.extend(_fit_blocks(analysis, figures, prediction))
    blocks.extend(prediction_blocks(prediction))
    blocks.append(("h", 2, "Cells"))
    blocks.append(
        (
            "p",
            "Seed means; steps and passes are means over seeds (data_scaling: where early stopping ended "
            "the run, or the cap); metric columns show the value and the trivial baseline's in brackets. "
            "FLOPs: torch.utils.flop_counter on representative batches (matmul-like ops only) x steps.",
        )
    )
    blocks.append(
        (
            "table",
            [
                "cell",
                "N",
                "D (frames)",
                "seeds",
                "steps",
                "passes",
                "stopped",
                "FLOPs",
                "combined loss",
                "baseline",
                "ratio",
                "near baseline",
                *metric_names,
            ],
            _cell_rows(analysis, metric_names),
        )
    )
    blocks.extend(_excluded_blocks(analysis))
    blocks.append(("h", 2, "Reproduce"))
    blocks.append(("p", f"`{sweep['command']}`; every number is in results.json."))
    return blocks


def write_scaling_report(
    results: dict[str, Any],
    out_dir: str | os.PathLike,
    rules: FitRules = FitRules(),
    prediction: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Fit, plot and write results.json, report.md (figures/*.png) and report.html into out_dir."""
    grid = [p for p in results["points"] if p.get("role", "grid") == "grid"]
    analysis = analyse(grid, results["metric_names"], rules) if grid else None
    figures = scaling_figures(analysis, prediction) if analysis is not None else {}
    full = {
        **results,
        "rules": dataclasses.asdict(rules),
        "analysis": None if analysis is None else analysis.to_json(),
        "prediction": prediction,
    }
    return write_report_files(
        out_dir,
        full,
        scaling_report_blocks(results, analysis, list(figures), rules, prediction),
        figures,
        title=f"scaling sweep: {results['sweep']['name']}",
    )
