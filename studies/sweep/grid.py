"""Expand a sweep config into points, each a self-contained, picklable description of one training run.

Layout under the sweep's out_dir (absolute in every point, so a point runs from any working directory):
  data/D{frames}/            the nested training subsets (foundation.studies.sweep.subsets)
  points/{point_id}/         one training run directory per point, with the point's markers
  report/                    results.json, report.md, report.html, figures/
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from foundation.studies.sweep.config import ModelSize, SweepConfig

from foundation.config import apply_overrides, read_yaml, to_dict
from foundation.data.manifest import MANIFEST_NAME
from foundation.models.config import resolve_model_config
from foundation.train.config import load_train_config


@dataclasses.dataclass
class SweepPoint:
    """One grid point: which model, data subset, budget and seed, and the training config that runs it."""

    point_id: str
    model: str
    target_frames: int
    seed: int
    budget_kind: str  # "steps", "flops" or "converge" (budget: the cap in passes)
    budget: float
    data_path: str
    run_dir: str
    train_config: dict[
        str, Any
    ]  # the resolved training config (plain data); max_steps is set for "steps"
    loss_weights: dict[str, float]
    flops_batches: int
    flops_seed: int
    convergence: dict[str, Any] | None = (
        None  # data_scaling: max_passes, patience, validate_every_passes, ...
    )
    role: str = "grid"  # "grid", or "prediction" (the point beyond the grid the fits predict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def subset_dir(config: SweepConfig, frames: int) -> Path:
    return Path(config.out_dir).resolve() / "data" / f"D{frames}"


def point_id(model: str, frames: int, budget_kind: str, budget: float, seed: int) -> str:
    """e.g. xs-D1000-S300-seed0 (steps budget), xs-D1000-F1e+12-seed0 (FLOPs budget), xs-D1000-conv-seed0
    (trained to convergence)."""
    tag = {"steps": f"S{int(budget)}", "flops": f"F{budget:.3g}", "converge": "conv"}[budget_kind]
    return f"{model}-D{frames}-{tag}-seed{seed}"


def _override_text(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML, so apply_overrides parses it back unchanged


def resolve_train_config(
    config: SweepConfig, size: ModelSize, data_path: str, run_dir: str, steps: int, seed: int
) -> dict[str, Any]:
    """The base training config with the sweep's fixed overrides and this point's model, data, budget, seed,
    checked against the training schema; returned as plain data."""
    data = read_yaml(config.base_config)
    # the point's model, fully resolved (base model_overrides, then the size's), so the hash sees every value
    edits = list(data.pop("model_overrides", []) or []) + [
        _override_text(k, v) for k, v in size.overrides.items()
    ]
    data["model"] = to_dict(resolve_model_config(size.model, edits))
    overrides = [_override_text(k, v) for k, v in config.overrides.items()]
    overrides += [
        _override_text("data.path", data_path),
        _override_text("run_dir", run_dir),
        _override_text("train.max_steps", steps),
        _override_text("train.seed", seed),
    ]
    if config.readout.validation_sources:
        overrides.append(
            _override_text("data.validation_sources", config.readout.validation_sources)
        )
    return to_dict(load_train_config(apply_overrides(data, overrides)))


def _point(
    config: SweepConfig,
    size: ModelSize,
    frames: int,
    kind: str,
    budget: float,
    seed: int,
    role: str = "grid",
) -> SweepPoint:
    pid = point_id(size.name, frames, kind, budget, seed)
    steps = (
        int(budget) if kind == "steps" else 1
    )  # FLOPs and convergence budgets get their steps once measured
    data_path, run_dir = (
        str(subset_dir(config, frames)),
        str(Path(config.out_dir).resolve() / "points" / pid),
    )
    return SweepPoint(
        point_id=pid,
        model=size.name,
        target_frames=frames,
        seed=seed,
        budget_kind=kind,
        budget=float(budget),
        data_path=data_path,
        run_dir=run_dir,
        train_config=resolve_train_config(config, size, data_path, run_dir, steps, seed),
        loss_weights=dict(config.loss),
        flops_batches=config.flops.batches,
        flops_seed=config.flops.seed,
        role=role,
        convergence=dataclasses.asdict(config.convergence) if kind == "converge" else None,
    )


def _budgets(config: SweepConfig) -> tuple[str, list[float]]:
    if config.design == "data_scaling":
        return "converge", [config.convergence.max_passes]
    return (
        ("steps", sorted(config.budget.steps))
        if config.budget.steps
        else ("flops", sorted(config.budget.flops))
    )


def expand_grid(config: SweepConfig) -> list[SweepPoint]:
    """Every point of models x data sizes x budgets x seeds, in that nesting order (smallest runs first
    within a model)."""
    kind, budgets = _budgets(config)
    return [
        _point(config, size, frames, kind, budget, seed)
        for size in config.models
        for frames in sorted(config.data.frames)
        for budget in budgets
        for seed in config.seeds
    ]


def prediction_model(config: SweepConfig) -> ModelSize:
    """The model of the predicted point: prediction.model, else the grid's last (largest) model."""
    assert config.prediction is not None
    return config.prediction.model or config.models[-1]


def prediction_points(config: SweepConfig) -> list[SweepPoint]:
    """The predicted point beyond the grid, one per seed (none without a `prediction`)."""
    if config.prediction is None:
        return []
    kind, budgets = _budgets(config)
    return [
        _point(
            config,
            prediction_model(config),
            config.prediction.frames,
            kind,
            budgets[0],
            seed,
            "prediction",
        )
        for seed in config.seeds
    ]


def data_sizes(config: SweepConfig) -> list[int]:
    """Every training-set size the sweep needs a subset of: the grid's and the predicted point's."""
    return sorted(
        set(config.data.frames) | ({config.prediction.frames} if config.prediction else set())
    )


def point_hash(point: SweepPoint) -> str:
    """sha256 of what determines the point's result: its training config (paths aside), its data's manifest
    and its budget. A finished point whose hash still matches is never rerun."""
    train = {k: v for k, v in point.train_config.items() if k != "run_dir"}
    train["data"] = {k: v for k, v in train["data"].items() if k != "path"}
    manifest = Path(point.data_path) / MANIFEST_NAME
    body = {
        "train": train,
        "data_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "budget": [point.budget_kind, point.budget],
        "flops": [point.flops_batches, point.flops_seed],
    }
    if point.convergence is not None:
        body["convergence"] = point.convergence
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
