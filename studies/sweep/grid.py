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

from foundation.config import apply_overrides, read_yaml, to_dict
from foundation.data.manifest import MANIFEST_NAME
from foundation.models.config import resolve_model_config
from foundation.studies.sweep.config import SweepConfig
from foundation.train.config import load_train_config


@dataclasses.dataclass
class SweepPoint:
    """One grid point: which model, data subset, budget and seed, and the training config that runs it."""

    point_id: str
    model: str
    target_frames: int
    seed: int
    budget_kind: str                 # "steps" or "flops"
    budget: float
    data_path: str
    run_dir: str
    train_config: dict[str, Any]     # the resolved training config (plain data); max_steps is set for "steps"
    loss_weights: dict[str, float]
    flops_batches: int
    flops_seed: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def subset_dir(config: SweepConfig, frames: int) -> Path:
    return Path(config.out_dir).resolve() / "data" / f"D{frames}"


def point_id(model: str, frames: int, budget_kind: str, budget: float, seed: int) -> str:
    """e.g. xs-D1000-S300-seed0 (steps budget) or xs-D1000-F1e+12-seed0 (FLOPs budget)."""
    tag = f"S{int(budget)}" if budget_kind == "steps" else f"F{budget:.3g}"
    return f"{model}-D{frames}-{tag}-seed{seed}"


def _override_text(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML, so apply_overrides parses it back unchanged


def resolve_train_config(config: SweepConfig, model_index: int, data_path: str, run_dir: str, steps: int,
                         seed: int) -> dict[str, Any]:
    """The base training config with the sweep's fixed overrides and this point's model, data, budget, seed,
    checked against the training schema; returned as plain data."""
    size = config.models[model_index]
    data = read_yaml(config.base_config)
    # the point's model, fully resolved (base model_overrides, then the size's), so the hash sees every value
    edits = list(data.pop("model_overrides", []) or []) + [_override_text(k, v) for k, v in size.overrides.items()]
    data["model"] = to_dict(resolve_model_config(size.model, edits))
    overrides = [_override_text(k, v) for k, v in config.overrides.items()]
    overrides += [_override_text("data.path", data_path), _override_text("run_dir", run_dir),
                  _override_text("train.max_steps", steps), _override_text("train.seed", seed)]
    return to_dict(load_train_config(apply_overrides(data, overrides)))


def expand_grid(config: SweepConfig) -> list[SweepPoint]:
    """Every point of models x data sizes x budgets x seeds, in that nesting order (smallest runs first
    within a model)."""
    out = Path(config.out_dir).resolve()
    kind = "steps" if config.budget.steps else "flops"
    budgets = sorted(config.budget.steps or config.budget.flops)
    points = []
    for m, size in enumerate(config.models):
        for frames in sorted(config.data.frames):
            for budget in budgets:
                for seed in config.seeds:
                    pid = point_id(size.name, frames, kind, budget, seed)
                    steps = int(budget) if kind == "steps" else 1  # FLOPs budgets get their steps once measured
                    data_path, run_dir = str(subset_dir(config, frames)), str(out / "points" / pid)
                    points.append(SweepPoint(
                        point_id=pid, model=size.name, target_frames=frames, seed=seed, budget_kind=kind,
                        budget=float(budget), data_path=data_path, run_dir=run_dir,
                        train_config=resolve_train_config(config, m, data_path, run_dir, steps, seed),
                        loss_weights=dict(config.loss), flops_batches=config.flops.batches,
                        flops_seed=config.flops.seed))
    return points


def point_hash(point: SweepPoint) -> str:
    """sha256 of what determines the point's result: its training config (paths aside), its data's manifest
    and its budget. A finished point whose hash still matches is never rerun."""
    train = {k: v for k, v in point.train_config.items() if k != "run_dir"}
    train["data"] = {k: v for k, v in train["data"].items() if k != "path"}
    manifest = Path(point.data_path) / MANIFEST_NAME
    body = {"train": train, "data_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "budget": [point.budget_kind, point.budget], "flops": [point.flops_batches, point.flops_seed]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
