"""Eval report figures as PNG bytes (matplotlib, Agg): parity per task, learning curves, pre-trained versus scratch,
zero-shot error distributions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from foundation.evals.hierarchical import hierarchical_interval
from foundation.evals.paired import pretraining_seed_of

from foundation.report import figure_png

COLORS = {
    "pretrained": "#1f77b4",
    "scratch": "#d62728",
    "zeroshot": "#2ca02c",
    "probe_pretrained": "#17becf",
    "probe_random": "#ff7f0e",
}


def _label(task: dict[str, Any]) -> str:
    unit = task.get("unit") or ""
    return f"{task['property']} ({unit})" if unit else task["property"]


def parity_figure(task: dict[str, Any]) -> bytes:
    """Predicted against true test values at the headline training size, pooled over folds and seeds, one colour
    per variant."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    lo, hi = np.inf, -np.inf
    for variant, units in _by_variant(_headline_units(task)).items():
        t = np.concatenate([np.array(u["predictions"]["y_true"], dtype=float) for u in units])
        p = np.concatenate([np.array(u["predictions"]["y_pred"], dtype=float) for u in units])
        finite = np.isfinite(t) & np.isfinite(
            p
        )  # None (a non-finite prediction) in results.json reads as nan
        t, p = t[finite], p[finite]
        if t.size == 0:
            continue
        mae = (task["summary"].get(variant, {}).get("mae") or {}).get("mean") or float("nan")
        ax.scatter(
            t, p, s=8, alpha=0.5, color=COLORS.get(variant), label=f"{variant} (MAE {mae:.3g})"
        )
        lo, hi = min(lo, t.min(), p.min()), max(hi, t.max(), p.max())
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"true {_label(task)}")
    ax.set_ylabel(f"predicted {_label(task)}")
    ax.set_title(task["name"])
    ax.legend(fontsize=8)
    return figure_png(fig)


def learning_curves_figure(task: dict[str, Any]) -> bytes:
    """Validation MAE per epoch of every fine-tuning unit (inner validation split), one colour per variant.
    Epochs without a finite validation MAE (None in results.json: a diverged epoch) are left out of a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    values = []
    for variant, units in _by_variant(task["units"]).items():
        labelled = False
        for u in units:
            points = [(c.get("epoch"), c.get("val_mae")) for c in (u.get("curve") or [])]
            points = [
                (e, v) for e, v in points if e is not None and v is not None and np.isfinite(v)
            ]
            if not points:
                continue
            values += [v for _, v in points]
            ax.plot(
                *zip(*points),
                color=COLORS.get(variant),
                alpha=0.6,
                lw=1,
                label=None if labelled else variant,
            )
            labelled = True
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation MAE {task.get('unit') or ''}".strip())
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_title(f"{task['name']}: learning curves")
    if values:
        ax.legend(fontsize=8)
    return figure_png(fig)


def size_curve_figure(task: dict[str, Any]) -> bytes:
    """Test MAE against training structures per fold (log axis): each arm's mean over (fold, seed) with a
    hierarchical bootstrap 95% interval of that mean, and the mean predictor's MAE as the trivial baseline."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))

    def x_of(
        units: list[dict[str, Any]],
    ) -> float:  # mean training structures (a fold's "all" varies a little)
        return float(np.mean([u["n_train"] + u["n_val"] for u in units]))

    for variant, units in _by_variant(task["units"]).items():
        groups: dict[Any, list[dict[str, Any]]] = {}
        for u in units:
            if (u.get("metrics") or {}).get("mae") is not None:
                groups.setdefault(u.get("size"), []).append(u)
        if not groups:
            continue
        rows = sorted(((x_of(g), g) for g in groups.values()), key=lambda row: row[0])
        xs = [x for x, _ in rows]
        means = np.array([np.mean([u["metrics"]["mae"] for u in g]) for _, g in rows])
        bounds = np.array(
            [
                hierarchical_interval(
                    [u["metrics"]["mae"] for u in g],
                    [pretraining_seed_of(u) for u in g],
                    [u["fold"] for u in g],
                )
                for _, g in rows
            ]
        )
        ax.errorbar(
            xs,
            means,
            yerr=[means - bounds[:, 0], bounds[:, 1] - means],
            color=COLORS.get(variant),
            marker="o",
            ms=4,
            capsize=3,
            lw=1.2,
            label=variant,
        )
    base: dict[Any, list[dict[str, Any]]] = {}
    for u in task["units"]:
        if u.get("baselines") and u["variant"] in ("pretrained", "probe_pretrained"):
            base.setdefault(u.get("size"), []).append(u)
    if base:
        rows = sorted(
            (x_of(g), np.mean([u["baselines"]["mean"]["mae"] for u in g])) for g in base.values()
        )
        ax.plot([x for x, _ in rows], [y for _, y in rows], "k--", lw=0.9, label="mean predictor")
    ax.set_xscale("log")
    ax.set_xlabel("training structures per fold")
    ax.set_ylabel(f"test MAE {task.get('unit') or ''}".strip())
    ax.set_title(f"{task['name']}: MAE against training size")
    ax.legend(fontsize=8)
    return figure_png(fig)


def comparison_figure(tasks: Sequence[dict[str, Any]]) -> bytes:
    """Test MAE (mean and std over folds and seeds) of pre-trained and scratch, one panel per task."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.8 * len(tasks) + 0.6, 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        variants = [v for v in ("pretrained", "scratch") if v in task["summary"]]
        means = [task["summary"][v]["mae"]["mean"] for v in variants]
        stds = [task["summary"][v]["mae"]["std"] for v in variants]
        ax.bar(variants, means, yerr=stds, capsize=4, color=[COLORS[v] for v in variants])
        for x, v in enumerate(variants):
            points = [
                u["metrics"]["mae"]
                for u in _headline_units(task)
                if u["variant"] == v and u["metrics"].get("mae") is not None
            ]
            ax.scatter(np.full(len(points), x), points, color="k", s=8, zorder=3)
        ax.set_title(task["name"], fontsize=9)
        ax.set_ylabel(f"test MAE {task.get('unit') or ''}".strip())
    fig.tight_layout()
    return figure_png(fig)


def zeroshot_figure(task: dict[str, Any]) -> bytes:
    """Histograms of zero-shot errors: energy per atom, force components, stress components."""
    errors = task["units"][0]["errors"]
    keys = [k for k in ("energy_per_atom", "forces", "stress") if errors.get(k)]
    units = {"energy_per_atom": "eV/atom", "forces": "eV/A", "stress": "eV/A^3"}
    fig, axes = plt.subplots(
        1, max(len(keys), 1), figsize=(3.6 * max(len(keys), 1), 3.2), squeeze=False
    )
    for ax, key in zip(axes[0], keys):
        values = np.asarray(errors[key], dtype=np.float64)
        ax.hist(values, bins=50, color=COLORS["zeroshot"], alpha=0.8)
        ax.set_xlabel(f"{key} error ({units[key]})")
        ax.set_ylabel("count")
        ax.set_yscale("log")
    fig.suptitle(f"{task['name']}: zero-shot errors (prediction - label)", fontsize=10)
    return figure_png(fig)


def eos_figure(task: dict[str, Any]) -> bytes:
    """Zero-shot bulk moduli from the EOS fit against the WIEN2k references, labelled by element."""
    rows = task["units"][0]["predictions"]
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    t = np.array([r["y_true"] for r in rows])
    p = np.array([r["y_pred"] for r in rows])
    ax.scatter(t, p, s=12, color=COLORS["zeroshot"])
    for r in rows:
        ax.annotate(r["id"], (r["y_true"], r["y_pred"]), fontsize=6, alpha=0.7)
    if t.size:
        lo, hi = min(t.min(), p.min(), 0.1), max(t.max(), p.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("WIEN2k B (GPa)")
    ax.set_ylabel("potential B (GPa)")
    ax.set_title(f"{task['name']}: zero-shot bulk moduli")
    return figure_png(fig)


def _headline_units(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The units at the training size the task's summary describes."""
    head = task.get("headline_size")
    return [u for u in task["units"] if u.get("size") == head]


def _by_variant(units: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for u in units:
        out.setdefault(u["variant"], []).append(u)
    return out


def task_figures(results: dict[str, Any]) -> dict[str, bytes]:
    """Every figure of a results dict, by file name (`figures/NAME.png`), in report order."""
    figures: dict[str, bytes] = {}
    finetune = [t for t in results["tasks"] if t["category"] == "finetune" and t["units"]]
    if finetune:
        figures["comparison"] = comparison_figure(finetune)
    for task in results["tasks"]:
        if not task["units"]:
            continue
        if task["category"] == "finetune":
            figures[f"{task['name']}_parity"] = parity_figure(task)
            figures[f"{task['name']}_curves"] = learning_curves_figure(task)
            if len({u.get("size") for u in task["units"]}) > 1:
                figures[f"{task['name']}_sizes"] = size_curve_figure(task)
        elif task["kind"] == "zeroshot":
            figures[f"{task['name']}_errors"] = zeroshot_figure(task)
        elif task["kind"] == "dcdft_eos":
            figures[f"{task['name']}_parity"] = eos_figure(task)
    return figures
