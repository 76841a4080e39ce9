"""Typed eval-suite configs (configs/evals/*.yaml): the fine-tuning recipe and the list of tasks."""

from __future__ import annotations

import builtins
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from foundation.config import ConfigError, from_dict, to_dict

TaskKind = Literal["matbench", "dcdft_eos", "dcdft_finetune", "zeroshot", "property"]
FINETUNE_KINDS = ("matbench", "dcdft_finetune", "property")


@dataclass
class PropertyFinetuneConfig:
    """One fine-tuning run, the same recipe for the pre-trained model and its from-scratch twin: optimiser,
    schedule, epochs, early stopping on an inner validation split. The only per-arm choice is the backbone
    learning rate, picked for each arm from `backbone_lr_grid` by the same rule (best inner validation MAE)."""

    max_epochs: int = 200
    patience: int = 30  # epochs without a better validation MAE before stopping
    batch_size: int = 32
    lr: float = 1e-3  # head (and backbone, unless backbone_lr is set)
    backbone_lr: float | None = None  # both arms; None: lr
    backbone_lr_grid: list[float] | None = (
        None  # per arm, pick the best of these on the inner validation split
    )
    head_init: Literal["pretrained", "fresh"] = (
        "pretrained"  # copy the pre-trained energy head's MLP, or not
    )
    head_fit: Literal["none", "ridge"] = (
        "none"  # ridge: LP-FT, the head's output layer starts as the ridge fit on frozen features
    )
    weight_decay: float = 0.0
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes frozen (in both arms)
    pooling: Literal["mean", "sum"] = "mean"
    loss: Literal["l1", "mse"] = "l1"
    schedule: Literal["plateau", "cosine", "constant"] = "plateau"
    plateau_patience: int | None = (
        None  # epochs without improvement before halving the LR; None: patience // 3
    )
    val_fraction: float = 0.1  # inner validation split carved from each training set
    grad_clip: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 0.5:
            raise ConfigError(
                f"finetune.val_fraction must lie in (0, 0.5), got {self.val_fraction}"
            )
        if self.max_epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ConfigError("finetune.max_epochs, batch_size and patience must be >= 1")
        if self.head_fit == "ridge" and self.pooling != "mean":
            raise ConfigError(
                "finetune.head_fit: ridge needs pooling: mean (a sum-pooled head's bias scales with the "
                "atom count, so it cannot hold the ridge fit's intercept)"
            )
        if self.backbone_lr_grid is not None and (
            not self.backbone_lr_grid or min(self.backbone_lr_grid) < 0
        ):
            raise ConfigError(
                f"finetune.backbone_lr_grid must be a non-empty list of rates >= 0, "
                f"got {self.backbone_lr_grid}"
            )


@dataclass
class TaskConfig:
    """One task of a suite. Relative paths resolve against the suite's data_root."""

    name: str
    kind: TaskKind
    path: str | None = (
        None  # matbench task file, or prepared dataset dir (None: the pre-training data)
    )
    folds_path: str | None = None  # matbench: matbench_v0.1_validation.json-style folds
    property: str | None = None  # property: the record property to predict
    split: str | None = (
        None  # zeroshot: split to score (default test); property: split to read (all)
    )
    folds: list[int] | None = None  # run only these folds (default all)
    num_folds: int = 5  # dcdft_finetune / property: k of the shuffled k-fold
    max_structures: int | None = (
        None  # fine-tuning: at most this many training structures per fold (test folds
    )
    # stay whole); zeroshot: a seeded subset of frames
    train_sizes: list[int | Literal["all"]] | None = (
        None  # learning curve: training structures per fold
    )
    elements: list[str] | None = None  # dcdft_eos: only these crystals
    seeds: list[int] | None = None  # default: the suite's seeds
    scratch: bool = True  # fine-tuning tasks: also train the from-scratch twin
    probe: bool = False  # fine-tuning tasks: also the ridge probe on frozen pooled features
    finetune: dict[str, Any] = field(
        default_factory=dict
    )  # overrides of the suite's finetune section

    def __post_init__(self) -> None:
        needs = {"matbench": ("path", "folds_path"), "property": ("property",)}.get(self.kind, ())
        for key in needs:
            if getattr(self, key) is None:
                raise ConfigError(f"task {self.name!r} of kind {self.kind} needs {key!r}")
        if self.finetune and self.kind not in FINETUNE_KINDS:
            raise ConfigError(
                f"task {self.name!r}: 'finetune' overrides only apply to {FINETUNE_KINDS}"
            )
        if self.train_sizes is not None:
            if self.kind not in FINETUNE_KINDS or not self.train_sizes:
                raise ConfigError(
                    f"task {self.name!r}: train_sizes needs a fine-tuning task and at least one size"
                )
            if any(s != "all" and s < 2 for s in self.train_sizes) or len(
                set(self.train_sizes)
            ) != len(self.train_sizes):
                raise ConfigError(
                    f"task {self.name!r}: train_sizes must be distinct sizes >= 2 or 'all', "
                    f"got {self.train_sizes}"
                )

    def sizes(self) -> list[int | None]:
        """Training structures per fold of each learning-curve point (None: the whole training fold, capped
        by max_structures), ascending."""
        raw = self.train_sizes or ["all"]
        sizes = [None if s == "all" else int(s) for s in raw]
        if self.max_structures is not None:
            sizes = [
                self.max_structures if s is None else min(s, self.max_structures) for s in sizes
            ]
        unique = sorted(set(s for s in sizes if s is not None)) + ([None] if None in sizes else [])
        return unique

    @builtins.property  # the field `property` shadows the builtin inside this class
    def is_finetune(self) -> bool:
        return self.kind in FINETUNE_KINDS


@dataclass
class SuiteConfig:
    """An eval suite: seeds, the fine-tuning recipe shared by every task, and the tasks."""

    name: str
    tasks: list[TaskConfig]
    data_root: str = "../shared/data"
    seeds: list[int] = field(default_factory=lambda: [0])
    finetune: PropertyFinetuneConfig = field(default_factory=PropertyFinetuneConfig)
    which: Literal["best", "last"] = "best"  # weights of a run directory
    device: str = "cpu"
    threads: int | None = (
        None  # torch threads per unit; None: the machine's cores shared among --workers
    )
    eos_strain: float = 0.06
    eos_points: int = 11

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"suite {self.name!r}: task names must be unique, got {names}")
        if not self.seeds:
            raise ConfigError(f"suite {self.name!r}: seeds must not be empty")

    def task(self, name: str) -> TaskConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"suite {self.name!r} has no task {name!r}")

    def finetune_for(self, task: TaskConfig) -> PropertyFinetuneConfig:
        """The suite's recipe with the task's overrides applied (type-checked)."""
        merged = {**to_dict(self.finetune), **task.finetune}
        return from_dict(
            PropertyFinetuneConfig,
            merged,
            origin=f"task {task.name!r} finetune overrides",
            prefix="finetune.",
        )

    def resolved(self, base: str | Path | None = None) -> SuiteConfig:
        """A copy with data_root and every task path absolute (relative to `base`, default the cwd)."""
        root = (Path(base or ".") / self.data_root).resolve()

        def absolute(p: str | None) -> str | None:
            return None if p is None else str((root / p).resolve())

        tasks = [
            dataclasses.replace(t, path=absolute(t.path), folds_path=absolute(t.folds_path))
            for t in self.tasks
        ]
        return dataclasses.replace(self, data_root=str(root), tasks=tasks)
