"""A long job as a submitit job that survives preemption: one task per GPU (or CPU slot) on every node.

The job carries one picklable `task` and nothing else (for training: foundation.train.runner.TrainTask, two paths).
Whoever starts it (first start, a requeue after preemption or the time limit, `scontrol requeue`, or a
resubmission after a node failure) calls the same task, which resumes from its own files (a run directory's newest
complete checkpoint), never from state stored in an old job pickle. The launcher knows no workload: a task is any
callable with a `stop()` method (see foundation.jobs.Resumable).
"""

from __future__ import annotations

import os
from typing import Any

import submitit
from foundation.slurm.dist_env import export_distributed_env
from foundation.slurm.executor import configure_job_logging, make_executor, record_job
from foundation.slurm.preemption import StopSignals, end_stopped_task
from foundation.slurm.profiles import ClusterProfile

from foundation.jobs import Resumable, stopped_early


class RequeueingJob(submitit.helpers.Checkpointable):
    """Runs `task()` on this task's rank; USR2/TERM call `task.stop()`; a task that stopped early on USR2 is
    requeued (it checkpointed on every rank first)."""

    def __init__(self, task: Resumable):
        self.task = task

    def __call__(self) -> Any:
        configure_job_logging()
        export_distributed_env()
        with StopSignals(self.task.stop) as signals:
            result = self.task()
        if stopped_early(result):
            end_stopped_task(signals.reason)
        return result

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Ask the task to stop (it saves on every rank) and hand back a fresh job with the same task."""
        self.task.stop()
        return submitit.helpers.DelayedSubmission(RequeueingJob(self.task))


def submit_resumable(
    launcher: str,
    profile: ClusterProfile,
    folder: str | os.PathLike,
    task: Resumable,
    *,
    name: str,
    kind: str,
    **info: Any,
) -> Any:
    """Submit a resumable task on profile.nodes x profile.tasks_per_node ranks; returns the submitit Job.
    Logs: FOLDER/JOBID_RANK_log.*; the job is recorded in FOLDER/jobs.jsonl with `info`."""
    executor = make_executor(launcher, folder, profile, name=name)
    job = executor.submit(RequeueingJob(task))
    record_job(
        folder,
        job,
        kind=kind,
        launcher=launcher,
        profile=profile,
        world_size=profile.world_size,
        **info,
    )
    return job
