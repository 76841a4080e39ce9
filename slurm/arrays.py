"""Array jobs: many independent picklable calls as one Slurm array, then a follow-up job that runs after them.

- `submit_array` + `submit_after`: the generic pair (sweeps use them for their grid points).
- `submit_prep`: one array task per data-prep chunk (`run_chunk`), then the merge (`run_prep`, which finds
  every chunk done and merges; `afterok`: a failed chunk cancels the merge, a rerun redoes only what is missing).
- `submit_eval`: one array task per eval unit (`run_unit`), then the reducer (`reduce_units`; `afterany`: the
  report is written even when a unit failed, and names what is missing).
- `submit_sweep`: one array task per sweep point to run (`run_point`), then `foundation sweep --only-report`
  (`afterany`: failed points are listed in the report and rerun with --retry).
On Slurm the follow-up is queued at once with a dependency; with submitit-local it is started when the array ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from foundation.slurm.executor import make_executor, record_job
from foundation.slurm.profiles import ClusterProfile


def submit_array(launcher: str, profile: ClusterProfile, folder: str | os.PathLike, fn: Callable[[Any], Any],
                 items: Sequence[Any], *, name: str) -> list[Any]:
    """Run fn(item) for every item as one array (profile.array resources per task); returns the jobs.

    On Slurm this returns at once; submitit-local has no scheduler, so it runs at most profile.array.parallelism
    processes at a time and returns when all have ended."""
    if not items:
        return []
    executor = make_executor(launcher, folder, profile, name=name, array=True)
    if launcher == "slurm":
        return executor.map_array(fn, list(items))
    jobs: list[Any] = []
    width = profile.array.parallelism
    for start in range(0, len(items), width):
        window = executor.map_array(fn, list(items[start:start + width]))
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


def submit_after(launcher: str, profile: ClusterProfile, folder: str | os.PathLike, fn: Callable[..., Any],
                 args: Sequence[Any], after: Sequence[Any], *, name: str, condition: str = "afterok") -> Any:
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
            raise RuntimeError(f"{name}: not started because jobs {failed} failed (logs in {folder})")
    executor = make_executor(launcher, folder, profile, name=name, array=True, dependency=dependency)
    return executor.submit(fn, *args)


def _ended_badly(job: Any) -> bool:
    try:
        job.result()
        return False
    except Exception:  # the job's own exception or submitit's UncompletedJobError; the logs tell which
        return True


def prep_job_folder(out: str | os.PathLike) -> Path:
    """Job files of a data-prep run: OUT.slurm/ beside the dataset (job pickles never go inside a dataset)."""
    out = Path(out)
    return out.with_name(out.name + ".slurm")


def submit_prep(launcher: str, profile: ClusterProfile, config: Any) -> tuple[list[Any], Any]:
    """Plan the chunks of `config` (a data_prep PrepConfig), submit one array task per chunk and the merge job.

    Returns (chunk jobs, merge job); the merge job's result is the PrepResult of the finished dataset."""
    from foundation.data_prep.chunks import is_done, plan_chunks, run_chunk
    from foundation.data_prep.pipeline import WORK_NAME, _check_out_dir, run_prep

    out = Path(config.out)
    _check_out_dir(out)
    tasks = plan_chunks(config, out / WORK_NAME)
    todo = [task for task in tasks if not is_done(task)]
    folder = prep_job_folder(out)
    chunks = submit_array(launcher, profile, folder, run_chunk, todo, name="prep-chunk")
    merge = submit_after(launcher, profile, folder, run_prep, [config], chunks, name="prep-merge")
    for job in chunks[:1] + [merge]:
        record_job(folder, job, kind="prep", launcher=launcher, profile=profile,
                   chunks=len(tasks), submitted_chunks=len(todo), out=str(out))
    return chunks, merge


def submit_eval(launcher: str, profile: ClusterProfile, out: str | os.PathLike, checkpoint: str | os.PathLike,
                suite: Any, command: str = "") -> tuple[list[Any], Any]:
    """Prepare an eval run in OUT, submit one array task per unfinished unit and the reducer after them.

    Returns (unit jobs, reducer job); the reducer's result maps report file names to their paths."""
    from foundation.evals.reduce import reduce_units
    from foundation.evals.suite import prepare_run, run_unit

    units = prepare_run(out, checkpoint, suite, command=command)
    todo = [unit for unit in units if not unit.result_path.is_file()]
    folder = Path(out) / "slurm"
    jobs = submit_array(launcher, profile, folder, run_unit, todo, name="eval-unit")
    reducer = submit_after(launcher, profile, folder, reduce_units, [str(Path(out).resolve())], jobs,
                           name="eval-reduce", condition="afterany")
    for job in jobs[:1] + [reducer]:
        record_job(folder, job, kind="eval", launcher=launcher, profile=profile, units=len(units),
                   submitted_units=len(todo))
    return jobs, reducer


def submit_sweep(launcher: str, profile: ClusterProfile, config_path: str, overrides: Sequence[str],
                 retry: Sequence[str] = ()) -> tuple[list[Any], Any]:
    """Submit the points of a sweep that need running as an array, then the fits and report after them.

    Returns (point jobs, report job); the report job's result is `foundation sweep`'s exit status."""
    from foundation.cli.main import main
    from foundation.studies.sweep.config import load_sweep_config
    from foundation.studies.sweep.runner import points_to_run, run_point
    from foundation.studies.sweep.study import prepare_sweep

    config = load_sweep_config(config_path, overrides)
    points = prepare_sweep(config)
    todo = points_to_run(points, retry)
    folder = Path(config.out_dir) / "slurm"
    jobs = submit_array(launcher, profile, folder, run_point, todo, name="sweep-point")
    report_args = ["sweep", "--config", str(Path(config_path).resolve()), *overrides, "--only-report"]
    report = submit_after(launcher, profile, folder, main, [report_args], jobs, name="sweep-report",
                          condition="afterany")
    for job in jobs[:1] + [report]:
        record_job(folder, job, kind="sweep", launcher=launcher, profile=profile, points=len(points),
                   submitted_points=len(todo))
    return jobs, report


def submit_ablation(launcher: str, profile: ClusterProfile, config: Any, workers: int = 1) -> tuple[list[Any], Any]:
    """The objective ablation: data prep here, one array task per objective's pre-training, then the
    evaluation and report as one job after them (`afterany`: the report names what is missing)."""
    from foundation.studies.ablation import ObjectiveRun, finish_ablation, prepare_data, resolved_config_path, run_objective

    prepare_data(config, workers=workers)
    config_path = resolved_config_path(config)
    folder = Path(config.out_dir) / "slurm"
    runs = submit_array(launcher, profile, folder, run_objective,
                        [ObjectiveRun(config_path, o.name) for o in config.objectives], name="ablation-pretrain")
    finish = submit_after(launcher, profile, folder, finish_ablation, [config_path, config.eval_workers], runs,
                          name="ablation-eval", condition="afterany")
    for job in runs[:1] + [finish]:
        record_job(folder, job, kind="ablation", launcher=launcher, profile=profile, objectives=len(runs))
    return runs, finish
