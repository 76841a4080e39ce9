"""Typed config of a scaling-law sweep (configs/sweeps/*.yaml).

A sweep is a grid: models x data sizes x budgets x seeds, every point a pre-training run of `base_config`
with the point's model, its nested data subset (`data.path`), its budget and seed. The `design` says how a
point's training length is set, and so which fits its losses support (foundation.studies.scaling.validity):
  data_scaling  every (N, D) point trained to convergence on its subset: early stopping on the shared
                validation split (`convergence.patience` validations without a new best), capped at
                `convergence.max_passes` passes; no `budget`. Supports L(N), L(D), L(N, D).
  iso_flop      several FLOP budgets (`budget.flops`); for each, every model trains on the one data set
                (`data.frames` holds one size) for as many steps as the budget buys. Supports the iso-FLOP
                profiles (a parabola in log N per budget) and N_opt(C), L_opt(C).
  fixed_steps   the same step (or FLOP) budgets for every point: data size and passes over it move together,
                so no scaling law describes it (kept to smoke-test the machinery; every fit is refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from foundation.config import ConfigError, load_config


@dataclass
class ModelSize:
    """One model of the family: a config under configs/model/ (name or path) plus dotted overrides of it."""

    name: str  # the label used in point ids
    model: str  # e.g. scalable-xs, or a YAML path
    overrides: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. {backbone.hidden: 32, backbone.layers: 2}


@dataclass
class DataAxis:
    source: str  # a prepared dataset with a train split (and a val split)
    frames: list[int] = field(
        default_factory=list
    )  # target training-set sizes; whole structures are taken
    seed: int = 0  # salt of the structure_id order (same seed: nested subsets)


@dataclass
class BudgetAxis:
    """Exactly one of: optimizer steps per run, or FLOPs per run (converted to steps with the measured cost)."""

    steps: list[int] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)


@dataclass
class FlopsConfig:
    batches: int = 3  # representative batches averaged for FLOPs per step
    seed: int = 0


@dataclass
class ConvergenceConfig:
    """data_scaling: how each point is trained to convergence (steps are counted per pass over its subset)."""

    max_passes: float = 50.0  # cap; a point that reaches it is recorded as "hit the cap"
    patience: int = 4  # validations without a new best validation loss -> stop
    validate_every_passes: float = 1.0  # one validation (and checkpoint) per pass ...
    min_validate_steps: int = 10  # ... but never more often than every this many steps


@dataclass
class ReadoutConfig:
    """What counts as a point's loss and when it is too close to the trivial baselines to be fitted."""

    validation_sources: list[str] = field(
        default_factory=list
    )  # data.validation_sources of every point (e.g.
    # the DFT sources); other val frames are reported apart
    baseline_ratio: float = 0.9  # combined loss > ratio x the baselines' combined loss:
    # flagged and left out of the fits


@dataclass
class FitConfig:
    n_boot: int = 500
    confidence: float = 0.95
    seed: int = 0
    min_points_per_parameter: float = (
        2.0  # a fit needs at least this many (N, D) cells per parameter
    )
    min_distinct: int = 3  # ... and this many distinct values of each scanned variable


@dataclass
class PredictionConfig:
    """data_scaling: one point beyond the grid, predicted from the fits before it runs, then run and compared."""

    frames: int  # its training-set size (e.g. beyond the largest of data.frames)
    model: ModelSize | None = None  # its model (a larger one); None: the largest model of the grid


@dataclass
class SweepConfig:
    name: str
    design: Literal["data_scaling", "iso_flop", "fixed_steps"]
    base_config: str  # the training recipe every point starts from
    out_dir: str  # data subsets, one run dir per point, the report
    models: list[ModelSize]
    data: DataAxis
    budget: BudgetAxis = field(default_factory=BudgetAxis)
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    prediction: PredictionConfig | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    overrides: dict[str, Any] = field(
        default_factory=dict
    )  # dotted training keys fixed for every point
    loss: dict[str, float] = field(
        default_factory=dict
    )  # final val metric -> weight in the combined loss
    flops: FlopsConfig = field(default_factory=FlopsConfig)
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("models: the sweep needs at least one model size")
        if len({m.name for m in self.models}) != len(self.models):
            raise ConfigError("models: names must be unique")
        if not self.data.frames or min(self.data.frames) < 1:
            raise ConfigError("data.frames: give at least one positive training-set size")
        self._check_design()
        if len(set(self.seeds)) != len(self.seeds) or (
            self.design != "fixed_steps" and len(self.seeds) < 2
        ):
            raise ConfigError(
                f"seeds: give distinct seeds, at least 2 for design {self.design} (the seed spread is "
                f"each point's error bar and its weight in the fits), got {self.seeds}"
            )
        if not 0 < self.readout.baseline_ratio <= 1:
            raise ConfigError(
                f"readout.baseline_ratio must lie in (0, 1], got {self.readout.baseline_ratio}"
            )
        if self.fit.min_points_per_parameter < 1 or self.fit.min_distinct < 2:
            raise ConfigError("fit.min_points_per_parameter must be >= 1 and fit.min_distinct >= 2")
        if not self.loss or min(self.loss.values()) < 0:
            raise ConfigError(
                "loss: name at least one validation metric with a non-negative weight"
            )
        reserved = {
            "run_dir",
            "data.path",
            "train.max_steps",
            "train.seed",
            "model",
            "model_overrides",
            "data.validation_sources",
        }
        if self.design == "data_scaling":
            reserved |= {"train.val_every", "train.checkpoint_every", "train.early_stop_patience"}
        clash = reserved & set(self.overrides)
        if clash:
            raise ConfigError(
                f"overrides: {sorted(clash)} are set by the sweep for every point (design "
                f"{self.design}; validation sources: readout.validation_sources)"
            )

    def _check_design(self) -> None:
        budget, conv = self.budget, self.convergence
        if self.design == "data_scaling":
            if budget.steps or budget.flops:
                raise ConfigError(
                    "budget: design data_scaling trains every point to convergence; set "
                    "convergence.max_passes / patience instead of budget.steps or budget.flops"
                )
            if not (
                conv.max_passes > 0
                and conv.patience >= 1
                and conv.validate_every_passes > 0
                and conv.min_validate_steps >= 1
            ):
                raise ConfigError(
                    "convergence: max_passes and validate_every_passes must be > 0, patience and "
                    f"min_validate_steps >= 1, got {conv}"
                )
        else:
            if self.design == "iso_flop" and (budget.steps or not budget.flops):
                raise ConfigError(
                    "budget: design iso_flop needs budget.flops (the compute budgets) and no "
                    "budget.steps"
                )
            if bool(budget.steps) == bool(budget.flops):
                raise ConfigError("budget: give exactly one of steps or flops")
            if min(budget.steps or budget.flops) <= 0:
                raise ConfigError("budget: every budget must be positive")
            if self.design == "iso_flop" and len(self.data.frames) != 1:
                raise ConfigError(
                    f"data.frames: design iso_flop trains every point on one data set (the budget "
                    f"sets the frames seen), give one size, got {self.data.frames}"
                )
        if self.prediction is not None:
            if self.design != "data_scaling":
                raise ConfigError(
                    f"prediction: only design data_scaling predicts a point beyond the grid (got "
                    f"{self.design})"
                )
            pred = self.prediction
            if pred.frames < 1:
                raise ConfigError(f"prediction.frames must be positive, got {pred.frames}")
            in_grid = pred.model is None or pred.model.name in {m.name for m in self.models}
            if in_grid and pred.frames in self.data.frames:
                raise ConfigError(
                    f"prediction: ({pred.model.name if pred.model else 'the largest model'}, "
                    f"{pred.frames} frames) is a grid point; predict one beyond the grid"
                )
            if pred.model is not None and pred.model.name in {m.name for m in self.models}:
                raise ConfigError(
                    f"prediction.model: {pred.model.name!r} is a grid model's name; leave model unset "
                    "to predict the largest grid model at more data, or name a new, larger model"
                )

    @property
    def loss_formula(self) -> str:
        return " + ".join(f"{w:g} x {name}" for name, w in self.loss.items())


def load_sweep_config(
    source: str | os.PathLike | dict, overrides: Sequence[str] = ()
) -> SweepConfig:
    """A SweepConfig from a YAML path (or mapping) plus dotted overrides (`data.source=DIR`, ...)."""
    return load_config(SweepConfig, source, overrides)
