"""Scaling-law figures as PNG bytes (matplotlib, Agg), drawn from cells (seed means, error bars = seed sd):
loss against parameters and against data with the fits and their bands (data_scaling), the joint fit, and the
iso-FLOP profiles with N_opt(C), L_opt(C) (iso_flop). Cells near the baseline are drawn hollow; the trivial
baselines are grey crosses; the predicted point is red (interval) beside its measurement (star)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from foundation.studies.scaling.analysis import COMBINED, Analysis
from foundation.studies.scaling.readouts import baseline_value, value
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from foundation.report import figure_png

DISPLAY_NAMES = {COMBINED: "combined loss"}  # how a fitted quantity is named on plots and tables


def _log_axes(ax) -> None:
    """Log-log axes; short plain labels on y (losses often span less than a decade), decades only on x."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.tick_params(axis="y", which="both", labelsize=6)


def _colours(n: int) -> list:
    return [plt.cm.viridis(x) for x in np.linspace(0.0, 0.85, max(n, 1))]


def _panels(quantities: Sequence[str]):
    fig, axes = plt.subplots(
        1, len(quantities), figsize=(3.3 * len(quantities), 3.1), squeeze=False
    )
    return fig, axes[0]


def _curve(ax, fit, xs: np.ndarray, colour, label: str, *extra: np.ndarray) -> None:
    ax.plot(xs, fit.predict(xs, *extra), color=colour, lw=1.2, label=label)
    band = fit.band(xs, *extra)
    if band is not None:
        ax.fill_between(xs, band[0], band[1], color=colour, alpha=0.15, lw=0)


def _cells(ax, cells: Sequence[dict], x_key: str, q: str, colour, label: str) -> None:
    """Seed means with seed-sd error bars (hollow: near the baseline) and the baselines as grey crosses."""
    cells = sorted(cells, key=lambda c: c[x_key])
    xs = [c[x_key] for c in cells]
    ys = [value(c, q) for c in cells]
    err = [c["sd"][q] or 0.0 for c in cells]
    ax.plot(xs, ys, ":", color=colour, lw=0.7)
    for x, y, e, c in zip(xs, ys, err, cells):
        ax.errorbar(
            [x],
            [y],
            yerr=[e],
            fmt="o",
            ms=4,
            color=colour,
            capsize=2,
            lw=0.8,
            mfc="none" if c["near_baseline"][q] else colour,
        )
    ax.plot([], [], "o", color=colour, ms=4, label=label)
    bases = [
        (x, baseline_value(c, q)) for x, c in zip(xs, cells) if baseline_value(c, q) is not None
    ]
    if bases:
        ax.plot(*zip(*bases), "x", color="0.6", ms=4)


def _prediction(ax, prediction: dict[str, Any] | None, x: float) -> None:
    if not prediction or prediction.get("refused"):
        return
    lo, hi = prediction["interval"]
    ax.errorbar(
        [x],
        [prediction["loss"]],
        yerr=[[prediction["loss"] - lo], [hi - prediction["loss"]]],
        fmt="s",
        color="red",
        ms=4,
        capsize=3,
        mfc="none",
        label="predicted",
    )
    measured = prediction.get("comparison", {}).get("measured")
    if measured is not None:
        ax.plot([x], [measured], "*", color="red", ms=8, label="measured")


def size_figure(analysis: Analysis, law: str, prediction: dict[str, Any] | None = None) -> bytes:
    """Loss against N (law 'L(N)', one colour per D) or D (law 'L(D)', per N), error bars, the fit and band."""
    x_key, group_key = ("n_params", "frames") if law == "L(N)" else ("frames", "n_params")
    cells = analysis.cells
    groups = sorted({c[group_key] for c in cells})
    fig, axes = _panels(analysis.quantities)
    x_max = max(c[x_key] for c in cells)
    if prediction and not prediction.get("refused") and prediction.get("law") == law:
        x_max = max(x_max, prediction["n_params" if law == "L(N)" else "frames"])
    xs = np.geomspace(min(c[x_key] for c in cells) / 1.3, x_max * 1.3, 100)
    for ax, q in zip(axes, analysis.quantities):
        for g, colour in zip(groups, _colours(len(groups))):
            _cells(
                ax,
                [c for c in cells if c[group_key] == g],
                x_key,
                q,
                colour,
                f"{'D' if group_key == 'frames' else 'N'}={g:.3g}",
            )
        fit = analysis.fits[q].get(law)
        if fit is not None:
            exp_name = "alpha" if law == "L(N)" else "beta"
            ci = fit.ci[exp_name] if fit.ci else None
            text = f"{exp_name}={fit.params[exp_name]:.2f}" + (
                f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            )
            _curve(ax, fit, xs, "k", f"fit: {text}")
        if q == COMBINED and prediction and prediction.get("law") == law:
            _prediction(ax, prediction, prediction["n_params" if law == "L(N)" else "frames"])
        _log_axes(ax)
        ax.set_xlabel("parameters N" if law == "L(N)" else "training frames D")
        ax.set_title(DISPLAY_NAMES.get(q, q), fontsize=9)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("validation value (x: trivial baseline)")
    return figure_png(fig)


def joint_figure(analysis: Analysis, prediction: dict[str, Any] | None = None) -> bytes:
    """Combined loss against D for every model size, with the joint fit's curve per size and its band."""
    fit = analysis.fits[COMBINED]["L(N,D)"]
    cells = analysis.cells
    sizes = sorted({c["n_params"] for c in cells})
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    d_max = max([c["frames"] for c in cells] + ([prediction["frames"]] if prediction else []))
    ds = np.geomspace(min(c["frames"] for c in cells) / 1.3, d_max * 1.3, 100)
    for n, colour in zip(sizes, _colours(len(sizes))):
        _cells(
            ax, [c for c in cells if c["n_params"] == n], "frames", COMBINED, colour, f"N={n:.3g}"
        )
        ax.plot(ds, fit.predict(np.full_like(ds, n), ds), color=colour, lw=1.1)
        band = fit.band(np.full_like(ds, n), ds)
        if band is not None:
            ax.fill_between(ds, band[0], band[1], color=colour, alpha=0.12, lw=0)
    if prediction and prediction.get("law") == "L(N,D)":
        _prediction(ax, prediction, prediction["frames"])
    p = fit.params
    ax.set_title(
        f"joint fit: alpha={p['alpha']:.2f}, beta={p['beta']:.2f}, E={p['E']:.3g}", fontsize=9
    )
    _log_axes(ax)
    ax.set_xlabel("training frames D")
    ax.set_ylabel(DISPLAY_NAMES[COMBINED])
    ax.legend(fontsize=7)
    return figure_png(fig)


def profiles_figure(analysis: Analysis) -> bytes:
    """Iso-FLOP profiles: combined loss against N per budget, the parabolas and their optima."""
    budgets = sorted({c["budget"] for c in analysis.cells})
    profiles = {p.budget: p for p in analysis.profiles}
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for budget, colour in zip(budgets, _colours(len(budgets))):
        members = [c for c in analysis.cells if c["budget"] == budget]
        _cells(ax, members, "n_params", COMBINED, colour, f"C={budget:.3g}")
        profile = profiles.get(budget)
        if profile is not None:
            ns = np.geomspace(
                min(c["n_params"] for c in members) / 1.2,
                max(c["n_params"] for c in members) * 1.2,
                60,
            )
            ax.plot(ns, np.exp(np.polyval(profile.coefficients, np.log(ns))), color=colour, lw=1)
            ax.plot(
                [profile.n_opt],
                [profile.loss_opt],
                "D",
                color=colour,
                ms=6,
                mec="k",
                mfc=colour if profile.bracketed else "none",
            )
    _log_axes(ax)
    ax.set_xlabel("parameters N")
    ax.set_ylabel(DISPLAY_NAMES[COMBINED])
    ax.set_title("iso-FLOP profiles (diamond: optimum)", fontsize=9)
    ax.legend(fontsize=6)
    return figure_png(fig)


def compute_laws_figure(analysis: Analysis) -> bytes:
    """N_opt and L_opt against the budget, with the profiles' intervals and the fitted power laws."""
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.1))
    for ax, (law, attr) in zip(axes, (("N_opt(C)", "n_opt"), ("L_opt(C)", "loss_opt"))):
        for p in analysis.profiles:
            ci = p.to_json()[f"{attr}_ci"]
            y = getattr(p, attr)
            yerr = [[y - ci[0]], [ci[1] - y]] if ci else None
            ax.errorbar(
                [p.budget],
                [y],
                yerr=yerr,
                fmt="o",
                color="k",
                ms=4,
                capsize=2,
                mfc="k" if p.bracketed else "none",
            )
        fit = analysis.compute_laws.get(law)
        if fit is not None:
            cs = np.geomspace(min(fit["budgets"]) / 1.5, max(fit["budgets"]) * 1.5, 50)
            ax.plot(
                cs,
                fit["coefficient"] * cs ** fit["exponent"],
                "r-",
                lw=1,
                label=f"exponent {fit['exponent']:.2f}",
            )
            ax.legend(fontsize=6)
        _log_axes(ax)
        ax.set_xlabel("training FLOPs C (counted)")
        ax.set_title(law, fontsize=9)
    return figure_png(fig)


def scaling_figures(
    analysis: Analysis, prediction: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """Every figure the analysis supports, by file name (figures/NAME.png), in report order."""
    figures = {}
    if analysis.design == "iso_flop":
        figures["isoflop_profiles"] = profiles_figure(analysis)
        if analysis.profiles:
            figures["compute_optimal"] = compute_laws_figure(analysis)
        return figures
    for law, name in (("L(N)", "loss_vs_params"), ("L(D)", "loss_vs_data")):
        if len({c["n_params" if law == "L(N)" else "frames"] for c in analysis.cells}) > 1:
            figures[name] = size_figure(analysis, law, prediction)
    if "L(N,D)" in analysis.fits[COMBINED]:
        figures["joint_fit"] = joint_figure(analysis, prediction)
    return figures
