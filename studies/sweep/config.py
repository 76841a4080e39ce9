"""Typed config of a scaling-law sweep (configs/sweeps/*.yaml).

A sweep is a grid: models x data sizes x budgets x seeds, every point a pre-training run of `base_config`
with the point's model, its nested data subset (`data.path`), its budget (`train.max_steps`) and seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from foundation.config import ConfigError, load_config


@dataclass
class ModelSize:
    """One model of the family: a config under configs/model/ (name or path) plus dotted overrides of it."""

    name: str                                         # the label used in point ids
    model: str                                        # e.g. scalable-xs, or a YAML path
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {backbone.hidden: 32, backbone.layers: 2}


@dataclass
class DataAxis:
    source: str                                       # a prepared dataset with a train split (and a val split)
    frames: list[int] = field(default_factory=list)   # target training-set sizes; whole structures are taken
    seed: int = 0                                     # salt of the structure_id order (same seed: nested subsets)


@dataclass
class BudgetAxis:
    """Exactly one of: optimizer steps per run, or FLOPs per run (converted to steps with the measured cost)."""

    steps: list[int] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)


@dataclass
class FlopsConfig:
    batches: int = 3                                  # representative batches averaged for FLOPs per step
    seed: int = 0


@dataclass
class FitConfig:
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0


@dataclass
class SweepConfig:
    name: str
    base_config: str                                  # the training recipe every point starts from
    out_dir: str                                      # data subsets, one run dir per point, the report
    models: list[ModelSize]
    data: DataAxis
    budget: BudgetAxis
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted training keys fixed for every point
    loss: dict[str, float] = field(default_factory=dict)     # final val metric -> weight in the combined loss
    flops: FlopsConfig = field(default_factory=FlopsConfig)
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("models: the sweep needs at least one model size")
        if len({m.name for m in self.models}) != len(self.models):
            raise ConfigError("models: names must be unique")
        if not self.data.frames or min(self.data.frames) < 1:
            raise ConfigError("data.frames: give at least one positive training-set size")
        if bool(self.budget.steps) == bool(self.budget.flops):
            raise ConfigError("budget: give exactly one of steps or flops")
        if min(self.budget.steps or self.budget.flops) <= 0:
            raise ConfigError("budget: every budget must be positive")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if not self.loss or min(self.loss.values()) < 0:
            raise ConfigError("loss: name at least one validation metric with a non-negative weight")
        reserved = {"run_dir", "data.path", "train.max_steps", "train.seed", "model", "model_overrides"}
        clash = reserved & set(self.overrides)
        if clash:
            raise ConfigError(f"overrides: {sorted(clash)} are set by the sweep for every point")

    @property
    def loss_formula(self) -> str:
        return " + ".join(f"{w:g} x {name}" for name, w in self.loss.items())


def load_sweep_config(source: str | os.PathLike | dict, overrides: Sequence[str] = ()) -> SweepConfig:
    """A SweepConfig from a YAML path (or mapping) plus dotted overrides (`data.source=DIR`, ...)."""
    return load_config(SweepConfig, source, overrides)
