"""Scaling-law figures as PNG bytes (matplotlib, Agg): loss against parameters, against data (with the
joint fit), and against FLOPs with the measured frontier and the joint fit's compute-optimal loss."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, NullFormatter  # noqa: E402

from foundation.evals.report.figures import figure_png  # noqa: E402
from foundation.studies.scaling.analysis import COMBINED, Analysis, value  # noqa: E402

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
    fig, axes = plt.subplots(1, len(quantities), figsize=(3.3 * len(quantities), 3.1), squeeze=False)
    return fig, axes[0]


def _curve(ax, fit, xs: np.ndarray, colour, label: str, *extra: np.ndarray) -> None:
    ax.plot(xs, fit.predict(xs, *extra), color=colour, lw=1.2, label=label)
    band = fit.band(xs, *extra)
    if band is not None:
        ax.fill_between(xs, band[0], band[1], color=colour, alpha=0.15, lw=0)


def size_figure(points: Sequence[dict], analysis: Analysis, law: str) -> bytes:
    """Loss against N (law 'L(N)', coloured by D) or D (law 'L(D)', coloured by N), with the 1-D fit and band."""
    x_key, group_key = ("n_params", "frames") if law == "L(N)" else ("frames", "n_params")
    top_steps = max(p["steps"] for p in points)
    chosen = [p for p in points if p["steps"] == top_steps]
    groups = sorted({p[group_key] for p in chosen})
    fig, axes = _panels(analysis.quantities)
    xs = np.geomspace(min(p[x_key] for p in chosen) / 1.3, max(p[x_key] for p in chosen) * 1.3, 100)
    for ax, q in zip(axes, analysis.quantities):
        for g, colour in zip(groups, _colours(len(groups))):
            members = sorted((p for p in chosen if p[group_key] == g), key=lambda p: p[x_key])
            ax.plot([p[x_key] for p in members], [value(p, q) for p in members], "o:", color=colour, ms=4, lw=0.7,
                    label=f"{'D' if group_key == 'frames' else 'N'}={g:.3g}")
        fit = analysis.fits[q].get(law)
        if fit is not None:
            exp_name = "alpha" if law == "L(N)" else "beta"
            ci = fit.ci[exp_name] if fit.ci else None
            text = f"{exp_name}={fit.params[exp_name]:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            _curve(ax, fit, xs, "k", f"fit: {text}")
        _log_axes(ax)
        ax.set_xlabel("parameters N" if law == "L(N)" else "training frames D")
        ax.set_title(DISPLAY_NAMES.get(q, q), fontsize=9)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("final validation value")
    return figure_png(fig)


def joint_figure(points: Sequence[dict], analysis: Analysis) -> bytes:
    """Combined loss against D for every model size, with the joint fit's curve per size and its band."""
    fit = analysis.fits[COMBINED]["L(N,D)"]
    top_steps = max(p["steps"] for p in points)
    chosen = [p for p in points if p["steps"] == top_steps]
    sizes = sorted({p["n_params"] for p in chosen})
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ds = np.geomspace(min(p["frames"] for p in chosen) / 1.3, max(p["frames"] for p in chosen) * 1.3, 100)
    for n, colour in zip(sizes, _colours(len(sizes))):
        members = sorted((p for p in chosen if p["n_params"] == n), key=lambda p: p["frames"])
        ax.plot([p["frames"] for p in members], [p[COMBINED] for p in members], "o", color=colour, ms=4)
        ax.plot(ds, fit.predict(np.full_like(ds, n), ds), color=colour, lw=1.1, label=f"N={n:.3g}")
        band = fit.band(np.full_like(ds, n), ds)
        if band is not None:
            ax.fill_between(ds, band[0], band[1], color=colour, alpha=0.12, lw=0)
    p = fit.params
    ax.set_title(f"joint fit: alpha={p['alpha']:.2f}, beta={p['beta']:.2f}, E={p['E']:.3g}", fontsize=9)
    _log_axes(ax)
    ax.set_xlabel("training frames D")
    ax.set_ylabel(DISPLAY_NAMES[COMBINED])
    ax.legend(fontsize=7)
    return figure_png(fig)


def frontier_figure(points: Sequence[dict], analysis: Analysis) -> bytes:
    """Combined loss against training FLOPs: every point, the measured frontier, the joint fit's optimum."""
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    sizes = sorted({p["n_params"] for p in points})
    for n, colour in zip(sizes, _colours(len(sizes))):
        members = [p for p in points if p["n_params"] == n]
        ax.scatter([p["flops"] for p in members], [p[COMBINED] for p in members], color=colour, s=16,
                   label=f"N={n:.3g}")
    by_id = {p["point_id"]: p for p in points}
    front = [by_id[i] for i in analysis.frontier]
    ax.step([p["flops"] for p in front], [p[COMBINED] for p in front], where="post", color="k", lw=1,
            label="measured frontier")
    if analysis.allocation:
        ax.plot([r["flops"] for r in analysis.allocation], [r["loss"] for r in analysis.allocation], "r--", lw=1,
                label="joint fit, optimal N and D")
    _log_axes(ax)
    ax.set_xlabel("training FLOPs (counted)")
    ax.set_ylabel(DISPLAY_NAMES[COMBINED])
    ax.legend(fontsize=6)
    return figure_png(fig)


def scaling_figures(points: Sequence[dict], analysis: Analysis) -> dict[str, bytes]:
    """Every figure the analysis supports, by file name (figures/NAME.png), in report order."""
    figures = {}
    for law, name in (("L(N)", "loss_vs_params"), ("L(D)", "loss_vs_data")):
        if len({p["n_params" if law == "L(N)" else "frames"] for p in points}) > 1:
            figures[name] = size_figure(points, analysis, law)
    if "L(N,D)" in analysis.fits[COMBINED]:
        figures["joint_fit"] = joint_figure(points, analysis)
    figures["compute_frontier"] = frontier_figure(points, analysis)
    return figures
