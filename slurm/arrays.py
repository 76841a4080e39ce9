"""Array jobs: many independent picklable calls as one Slurm array, then a follow-up job that runs after them.

`submit_workload` takes any workload described as a foundation.jobs.Workload (data-prep chunks then the merge, eval
units then the report, sweep points then the fits, ...) and knows nothing of what the calls do; `submit_array`
and `submit_after` are its two halves. On Slurm the follow-up is queued at once with a dependency (afterok: a
failed item cancels it; afterany: it runs whatever the items did); with submitit-local it is started when the
array has ended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from foundation.slurm.executor import LoggedCall, make_executor, record_job
from foundation.slurm.profiles import ClusterProfile

from foundation.jobs import Workload


def submit_array(
    launcher: str,
    profile: ClusterProfile,
    folder: str | os.PathLike,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    name: str,
) -> list[Any]:
    """Run fn(item) for every item as one array (profile.array resources per task); returns the jobs.

    On Slurm this returns at once; submitit-local has no scheduler, so it runs at most profile.array.parallelism
    processes at a time and returns when all have ended."""
    if not items:
        return []
    executor = make_executor(launcher, folder, profile, name=name, array=True)
    if launcher == "slurm":
        return executor.map_array(LoggedCall(fn), list(items))
    jobs: list[Any] = []
    width = profile.array.parallelism
    for start in range(0, len(items), width):
        window = executor.map_array(LoggedCall(fn), list(items[start : start + width]))
        for job in window:
            job.wait()
        jobs += window
    return jobs


def _array_ids(jobs: Iterable[Any]) -> list[str]:
    """Dependency ids of submitted jobs: an array's base id stands for all its tasks."""
    ids: list[str] = []
    for job in jobs:
        base = str(job.job_id).split("_")[0]
        if base not in ids:
            ids.append(base)
    return ids


def submit_after(
    launcher: str,
    profile: ClusterProfile,
    folder: str | os.PathLike,
    fn: Callable[..., Any],
    args: Sequence[Any],
    after: Sequence[Any],
    *,
    name: str,
    condition: str = "afterok",
) -> Any:
    """Submit fn(*args) as one single-task job that starts when the jobs in `after` have ended.

    condition: "afterok" (all must succeed; otherwise the job is cancelled) or "afterany" (whatever they did).
    """
    if condition not in ("afterok", "afterany"):
        raise ValueError(f"condition must be afterok or afterany, got {condition!r}")
    dependency = None
    if launcher == "slurm" and after:
        dependency = f"{condition}:" + ":".join(_array_ids(after))
    else:  # submitit-local has no scheduler: wait here
        failed = [job.job_id for job in after if _ended_badly(job)]
        if failed and condition == "afterok":
            raise RuntimeError(
                f"{name}: not started because jobs {failed} failed (logs in {folder})"
            )
    executor = make_executor(
        launcher, folder, profile, name=name, array=True, dependency=dependency
    )
    return executor.submit(LoggedCall(fn), *args)


def _ended_badly(job: Any) -> bool:
    try:
        job.result()
        return False
    except (
        Exception
    ):  # the job's own exception or submitit's UncompletedJobError; the logs tell which
        return True


def submit_workload(
    launcher: str, profile: ClusterProfile, workload: Workload
) -> tuple[list[Any], Any]:
    """Submit a workload (foundation.jobs.Workload): one array task per item, then its follow-up as one job
    after them (workload.condition). Returns (item jobs, follow-up job); both are recorded in workload.folder."""
    jobs = submit_array(
        launcher,
        profile,
        workload.folder,
        workload.task,
        workload.items,
        name=f"{workload.name}-item",
    )
    final = submit_after(
        launcher,
        profile,
        workload.folder,
        workload.then,
        list(workload.then_args),
        jobs,
        name=f"{workload.name}-then",
        condition=workload.condition,
    )
    for job in jobs[:1] + [final]:
        record_job(
            workload.folder,
            job,
            kind=workload.name,
            launcher=launcher,
            profile=profile,
            items=len(workload.items),
            **workload.info,
        )
    return jobs, final
