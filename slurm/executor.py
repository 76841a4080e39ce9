"""submitit executors from a cluster profile: `slurm` submits sbatch jobs, `submitit-local` runs the very same
pickled job on this machine (one process per task, the same signals and requeue protocol), without a cluster.

A job's folder is RUN_DIR/slurm: `JOBID_TASK_log.out|err` per rank, the submission script and submitit's job files.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.slurm.profiles import ClusterProfile, sbatch_option

from foundation.config import ConfigError

LAUNCHERS = ("slurm", "submitit-local")
JOB_RECORD = "jobs.jsonl"


def configure_job_logging() -> None:
    """In a job's process: the `foundation` logger's INFO records go to the job's stderr log (submitit starts
    the process with no handler, which would keep only warnings)."""
    logger = logging.getLogger("foundation")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class LoggedCall:
    """A job's function, called after configure_job_logging (picklable when `fn` is)."""

    fn: Callable[..., Any]

    def __call__(self, *args: Any) -> Any:
        configure_job_logging()
        return self.fn(*args)


def make_executor(
    launcher: str,
    folder: str | os.PathLike,
    profile: ClusterProfile,
    *,
    name: str,
    array: bool = False,
    dependency: str | None = None,
) -> Any:
    """A submitit AutoExecutor for `launcher` sized by `profile`.

    array=True sizes every task as one array element (profile.array: one task, one node); `dependency` lists
    Slurm's --dependency (e.g. "afterok:123:124"; Slurm only: the local launcher runs jobs in order).
    """
    import submitit

    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r} (known: {', '.join(LAUNCHERS)})")
    cluster = "slurm" if launcher == "slurm" else "local"
    if launcher == "slurm":
        select_cluster(profile, nodes=1 if array else profile.nodes)
    executor = submitit.AutoExecutor(
        folder=str(folder), cluster=cluster, **{f"{cluster}_max_num_timeout": profile.max_requeues}
    )
    if array:
        res = profile.array
        params: dict[str, Any] = dict(
            nodes=1,
            tasks_per_node=1,
            cpus_per_task=res.cpus_per_task,
            gpus_per_node=res.gpus_per_task,
            timeout_min=res.time_min or profile.time_min,
        )
        mem_gb = res.mem_gb
    else:
        params = dict(
            nodes=profile.nodes,
            tasks_per_node=profile.tasks_per_node,
            cpus_per_task=profile.cpus_per_task,
            gpus_per_node=profile.gpus_per_node,
            timeout_min=profile.time_min,
        )
        mem_gb = profile.mem_gb
    if mem_gb is not None:
        params["mem_gb"] = mem_gb
    if not params["gpus_per_node"]:
        del params[
            "gpus_per_node"
        ]  # no GPU request at all (some clusters reject --gpus-per-node=0)
    params["name"] = name
    additional: dict[str, Any] = dict(sbatch_option(line) for line in profile.extra_sbatch)
    if dependency:
        additional["dependency"] = dependency
        additional["kill-on-invalid-dep"] = (
            "yes"  # a failed prerequisite cancels the job instead of parking it
        )
    slurm_params = {
        "slurm_partition": profile.partition,
        "slurm_account": profile.account,
        "slurm_qos": profile.qos,
        "slurm_constraint": profile.constraint,
        "slurm_setup": list(profile.setup) or None,
        "slurm_additional_parameters": additional or None,
        "slurm_array_parallelism": profile.array.parallelism,
    }
    params.update({k: v for k, v in slurm_params.items() if v is not None})
    params["slurm_signal_delay_s"] = profile.signal_delay_s
    # a crashed rank ends the step (no rank waits forever); per-rank logs keep the runs before a requeue
    params["slurm_srun_args"] = ["--kill-on-bad-exit=1", "--open-mode=append"]
    executor.update_parameters(**params)
    return executor


def select_cluster(profile: ClusterProfile, nodes: int) -> None:
    """Point sbatch, scontrol and sacct (of this process and of its jobs) at the profile's cluster (SLURM_CONF),
    and refuse a job of more nodes than its partition has, instead of leaving it pending forever."""
    if profile.slurm_conf:
        if not os.path.isfile(profile.slurm_conf):
            raise ConfigError(
                f"cluster profile {profile.name!r}: slurm_conf {profile.slurm_conf} does not exist "
                "(is that cluster up?)"
            )
        os.environ["SLURM_CONF"] = profile.slurm_conf
    available = partition_nodes(profile.partition)
    if available is not None and nodes > available:
        raise ConfigError(
            f"cluster.nodes={nodes}: cluster profile {profile.name!r} asks for more nodes than partition "
            f"{profile.partition or '(default)'} has ({available}, from sinfo)"
        )


def partition_nodes(partition: str | None) -> int | None:
    """How many nodes the partition (None: the default one) has, from sinfo; None when sinfo cannot tell."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%P %D", *(["-p", partition] if partition else [])],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        name, count = line.split()
        if partition or name.endswith("*"):
            return int(count)
    return None


def record_job(
    folder: str | os.PathLike,
    job: Any,
    *,
    kind: str,
    launcher: str,
    profile: ClusterProfile,
    **extra: Any,
) -> None:
    """Append one line about a submitted job to FOLDER/jobs.jsonl (what `foundation status` reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "job_id": str(job.job_id),
        "kind": kind,
        "launcher": launcher,
        "cluster": profile.name,
        "slurm_conf": profile.slurm_conf,
        "submitted_at": time.time(),
        **extra,
    }
    with open(folder / JOB_RECORD, "a") as stream:
        stream.write(json.dumps(entry) + "\n")


def recorded_jobs(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The jobs recorded in a job folder, oldest first."""
    path = Path(folder) / JOB_RECORD
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def job_state(entry: dict[str, Any], folder: Path) -> str:
    """The scheduler's state of a recorded job (the first task of an array), asked of the cluster it went to."""
    if entry["launcher"] != "slurm":
        done = (folder / f"{entry['job_id']}_0_result.pkl").exists()
        return "FINISHED" if done else "NO RESULT (running, stopped or killed; submitit-local)"
    if entry.get("slurm_conf"):
        os.environ["SLURM_CONF"] = entry["slurm_conf"]
    try:
        from submitit.slurm.slurm import SlurmJob

        return SlurmJob(folder=folder, job_id=str(entry["job_id"])).state
    except Exception as exc:  # no Slurm reachable from here: say so instead of failing
        return f"UNKNOWN ({type(exc).__name__}: {exc})"
