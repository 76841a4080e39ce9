"""Eval tasks: Matbench structure tasks, ASE's dcdft bulk moduli, zero-shot E/F/S errors, and any prepared
dataset with a named property. `load_property_task_for(cfg)` gives the fine-tuning task a config names (whole:
training sizes are drawn per fold by common.training_subset, test folds are never subsampled)."""

from __future__ import annotations

from foundation.evals.config import TaskConfig
from foundation.evals.tasks.common import PropertyTask
from foundation.evals.tasks.dcdft import load_dcdft_task
from foundation.evals.tasks.matbench import load_matbench
from foundation.evals.tasks.property import load_property_task


def load_property_task_for(cfg: TaskConfig) -> PropertyTask:
    """The fine-tuning task of a `matbench`, `dcdft_finetune` or `property` task config."""
    if cfg.kind == "matbench":
        return load_matbench(cfg.path, cfg.folds_path, name=cfg.name)
    if cfg.kind == "dcdft_finetune":
        task = load_dcdft_task(num_folds=cfg.num_folds)
        task.name = cfg.name
        return task
    if cfg.kind == "property":
        return load_property_task(
            cfg.path, cfg.property, split=cfg.split, num_folds=cfg.num_folds, name=cfg.name
        )
    raise ValueError(f"task {cfg.name!r} of kind {cfg.kind} is not a fine-tuning task")


__all__ = ["PropertyTask", "load_property_task_for"]
