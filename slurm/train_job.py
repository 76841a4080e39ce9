"""A training run as a submitit job: one task per GPU (or CPU slot) on every node, each task one DeepSpeed rank.

The job carries two paths and nothing else: the run directory and its resolved config (RUN_DIR/config.yaml,
written at submission). Whoever starts it (first start, a requeue after preemption or the time limit,
`scontrol requeue`, or a resubmission after a node failure) resumes from the newest complete checkpoint that
run_training finds in RUN_DIR/checkpoints, never from a path stored in an old job pickle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import submitit

from foundation.slurm.dist_env import export_distributed_env
from foundation.slurm.executor import job_folder, make_executor, record_job
from foundation.slurm.preemption import StopSignals, end_stopped_task
from foundation.slurm.profiles import ClusterProfile

CONFIG_NAME = "config.yaml"


class TrainJob(submitit.helpers.Checkpointable):
    """Runs `run_training` on this task; on USR2 it checkpoints on every rank and requeues itself."""

    def __init__(self, run_dir: str, config_path: str):
        self.run_dir = str(run_dir)
        self.config_path = str(config_path)

    def __call__(self) -> dict:
        from foundation.train.config import load_train_config
        from foundation.train.runner import request_stop, run_training

        export_distributed_env()
        config = load_train_config(self.config_path, [f"run_dir={self.run_dir}"])
        with StopSignals(request_stop) as signals:
            summary = run_training(config)
        if summary.get("stopped"):
            end_stopped_task(signals.reason)
        return summary

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Ask the loop to stop (it saves on every rank) and hand back a fresh job with the same two paths."""
        from foundation.train.runner import request_stop

        request_stop()
        return submitit.helpers.DelayedSubmission(TrainJob(self.run_dir, self.config_path))


def write_run_config(config_path: str | os.PathLike | None, overrides: Sequence[str],
                     run_dir: str | os.PathLike | None = None) -> Path:
    """Resolve a training config (file + overrides, or RUN_DIR/config.yaml to resume) into RUN_DIR/config.yaml."""
    from foundation.config import ConfigError, save_config
    from foundation.train.config import load_train_config

    if config_path is None and run_dir is None:
        raise ConfigError("give --config FILE (or --resume RUN_DIR)")
    overrides = list(overrides) + ([f"run_dir={run_dir}"] if run_dir is not None else [])
    source = config_path if config_path is not None else Path(str(run_dir)) / CONFIG_NAME
    config = load_train_config(source, overrides)
    path = Path(config.run_dir) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(config, path)
    return path


def submit_training(launcher: str, profile: ClusterProfile, config_path: str | os.PathLike | None,
                    overrides: Sequence[str] = (), run_dir: str | os.PathLike | None = None,
                    name: str = "train") -> Any:
    """Submit (or resubmit) a training run; returns the submitit Job. Logs: RUN_DIR/slurm/JOBID_RANK_log.*"""
    resolved = write_run_config(config_path, overrides, run_dir)
    run_dir = resolved.parent
    folder = job_folder(run_dir)
    executor = make_executor(launcher, folder, profile, name=name)
    job = executor.submit(TrainJob(str(run_dir.resolve()), str(resolved.resolve())))
    record_job(folder, job, kind="train", launcher=launcher, profile=profile, world_size=profile.world_size)
    return job
