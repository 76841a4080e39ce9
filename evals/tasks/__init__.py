"""Eval tasks: Matbench structure tasks, ASE's dcdft bulk moduli, zero-shot E/F/S errors, and any prepared
dataset with a named property. `load_property_task_for(cfg)` gives the fine-tuning task a config names."""

from __future__ import annotations

from foundation.evals.config import TaskConfig
from foundation.evals.tasks.common import PropertyTask, restrict, subset_indices

SUBSET_SEED = 12345  # the subset of a task is fixed across seeds and variants


def load_property_task_for(cfg: TaskConfig) -> PropertyTask:
    """The fine-tuning task of a `matbench`, `dcdft_finetune` or `property` task config (subset applied)."""
    if cfg.kind == "matbench":
        from foundation.evals.tasks.matbench import load_matbench
        task = load_matbench(cfg.path, cfg.folds_path, name=cfg.name)
    elif cfg.kind == "dcdft_finetune":
        from foundation.evals.tasks.dcdft import load_dcdft_task
        task = load_dcdft_task(num_folds=cfg.num_folds)
        task.name = cfg.name
    elif cfg.kind == "property":
        from foundation.evals.tasks.property import load_property_task
        task = load_property_task(cfg.path, cfg.property, split=cfg.split, num_folds=cfg.num_folds, name=cfg.name)
    else:
        raise ValueError(f"task {cfg.name!r} of kind {cfg.kind} is not a fine-tuning task")
    if cfg.max_structures is not None:
        task = restrict(task, subset_indices(len(task.frames), cfg.max_structures, SUBSET_SEED))
    return task


__all__ = ["PropertyTask", "load_property_task_for"]
