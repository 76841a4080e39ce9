"""Synthetic sweep points drawn from known laws (with seed noise), as run_point would record them."""

from __future__ import annotations

import numpy as np

METRICS = ("forces_mae", "energy_mae")


def data_law(n, d):
    return 0.02 + 4 * n**-0.35 + 1.5 * d**-0.3


def point(
    model: str,
    n: float,
    d: int,
    seed: int,
    loss: float,
    *,
    kind="converge",
    budget=50.0,
    baseline_factor=10.0,
) -> dict:
    metrics = {"forces_mae": 0.9 * loss, "energy_mae": 0.1 * loss}
    baselines = {m: baseline_factor * v for m, v in metrics.items()}
    tag = {"converge": "conv", "flops": f"F{budget:.3g}"}[kind]
    return {
        "point_id": f"{model}-D{d}-{tag}-seed{seed}",
        "model": model,
        "role": "grid",
        "n_params": int(n),
        "target_frames": d,
        "frames": d,
        "seed": seed,
        "budget_kind": kind,
        "budget": budget,
        "steps": 100,
        "passes": 100 * 8 / d,
        "early_stopped": True,
        "hit_cap": False,
        "frames_per_step": 8,
        "flops_per_frame": 30 * n,
        "flops": 30 * n * 800,
        "device_hours": 0.01,
        "metrics": metrics,
        "baseline_metrics": baselines,
        "loss": sum(metrics.values()),
        "baseline_loss": sum(baselines.values()),
        "excluded_metrics": {"forces_mae": 2 * loss},
    }


def data_points(
    n_sizes=(2e4, 1e5, 5e5, 2e6),
    d_sizes=(100, 200, 400, 800, 1600, 3200),
    seeds=(0, 1),
    noise=0.01,
    rng_seed=0,
) -> list[dict]:
    rng = np.random.default_rng(rng_seed)
    return [
        point(f"n{int(n)}", n, d, s, data_law(n, d) * float(np.exp(rng.normal(0, noise))))
        for n in n_sizes
        for d in d_sizes
        for s in seeds
    ]


def isoflop_law(n, c):
    """ln L = ln L_opt(C) + 0.1 (ln N - ln N_opt(C))^2 with N_opt = 0.5 C^0.5 and L_opt = 20 C^-0.1."""
    n_opt, l_opt = 0.5 * c**0.5, 20 * c**-0.1
    return l_opt * np.exp(0.1 * np.log(n / n_opt) ** 2)


def isoflop_points(
    budgets=(1e10, 1e11, 1e12, 1e13), per_budget=6, seeds=(0, 1), noise=0.005, rng_seed=0
):
    rng = np.random.default_rng(rng_seed)
    points = []
    for c in budgets:
        n_opt = 0.5 * c**0.5
        for n in np.geomspace(n_opt / 12, n_opt * 8, per_budget):  # the optimum inside, off centre
            for s in seeds:
                loss = isoflop_law(n, c) * float(np.exp(rng.normal(0, noise)))
                p = point(f"n{int(n)}", n, 3000, s, loss, kind="flops", budget=c)
                p["point_id"] = f"n{int(n)}-D3000-F{c:.3g}-seed{s}"
                points.append(p)
    return points


def results(points, design="data_scaling") -> dict:
    return {
        "sweep": {
            "name": "synthetic",
            "design": design,
            "base_config": "base.yaml",
            "data_source": "data",
            "data_seed": 0,
            "validation_sources": ["MPtrj"],
            "loss_formula": "1 x forces_mae + 1 x energy_mae",
            "command": "foundation sweep ...",
        },
        "created": "now",
        "confidence": 0.95,
        "metric_names": list(METRICS),
        "points": points,
        "failed": [{"point_id": "broken", "error": "RuntimeError: boom"}],
        "pending": [],
    }
