"""Workloads, described once and run anywhere: many independent calls (one per item), then one follow-up.

Every workload of the project has this shape: data-prep chunks then the merge, eval units then the report,
sweep points then the scaling fits, the ablation's pre-training runs then its evaluation. A workload module builds
a `Workload`; `run_workload` runs it on this machine (in `workers` spawned processes, or a fresh one per item when the
workload says `isolate`), and the Slurm launcher (`foundation.slurm.arrays.submit_workload`) submits the very same
description as an array plus a dependent job. Neither runner knows what the calls do.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal, Protocol

from foundation.progress import progress_bar

log = logging.getLogger(__name__)

Condition = Literal["afterok", "afterany"]
JOB_FOLDER = "slurm"  # a run's launcher files and per-rank logs: RUN_DIR/slurm


def job_folder(run_dir: str | os.PathLike) -> Path:
    """Where a launcher keeps a run's job files and per-rank logs (a training run, an eval, a study)."""
    return Path(run_dir) / JOB_FOLDER


@dataclass
class Workload:
    """A workload: `task(item)` for every item (independent, picklable), then `then(*then_args)`.

    condition: "afterok" runs the follow-up only when every item succeeded; "afterany" runs it whatever they did
    (a report that lists what is missing). `folder` holds the launcher's files and job records; `info` is what
    the job records say about the workload (counts). `isolate` runs every item in a fresh process even with one
    worker (items that hold process-wide state: a DeepSpeed process group, torch's thread pool)."""

    name: str
    folder: Path
    task: Callable[[Any], Any]
    items: list[Any]
    then: Callable[..., Any]
    then_args: tuple[Any, ...] = ()
    condition: Condition = "afterok"
    isolate: bool = False
    label: Callable[[Any], str] = str
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.condition not in ("afterok", "afterany"):
            raise ValueError(f"condition must be afterok or afterany, got {self.condition!r}")


@dataclass
class WorkloadResult:
    """What a local workload run did: each item's return value (None for a failed one), the failures as
    (label, traceback), and the follow-up's return value (None when it did not run)."""

    results: list[Any]
    failures: list[tuple[str, str]]
    final: Any = None
    stopped: bool = (
        False  # an item stopped early on request: the items after it and the follow-up did not run
    )


class Resumable(Protocol):
    """A long job that resumes from its own files (a training run): calling it starts or resumes the work and
    returns a summary dict, with `stopped: true` when it stopped early on request; `stop()` asks it to stop at
    the next safe point and may be called from a signal handler. Picklable, so a launcher can requeue it."""

    def __call__(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


def stopped_early(summary: Any) -> bool:
    """Whether a Resumable's summary says it stopped on request before finishing."""
    return isinstance(summary, dict) and bool(summary.get("stopped"))


class ItemFailed(RuntimeError):
    """An item that failed in a child process (the message holds its traceback)."""


class WorkloadFailed(RuntimeError):
    """An afterok workload whose items did not all succeed: the follow-up did not run."""


def run_items(
    task: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    workers: int = 1,
    isolate: bool = False,
    label: Callable[[Any], str] = str,
    desc: str = "items",
    progress: bool = True,
    keep_going: bool = True,
) -> tuple[list[Any], list[tuple[str, str]]]:
    """Run task(item) for every item: in this process (workers <= 1 and not isolate) or in `workers` spawned
    processes (isolate: a fresh one per item), each ending with its parent. Results come back in item order; a
    failing item (an exception, or a process killed without a word) is recorded as (label, traceback) and the
    others go on. keep_going=False: the first failure raises instead (in this process: the item's own
    exception; from a child process: ItemFailed with its traceback), and the items still running are ended. In
    this process, an item that stopped early on request (a training run told to stop by SIGTERM or SIGUSR2) ends
    the loop: the items after it keep None."""
    results: list[Any] = [None] * len(items)
    failures: list[tuple[str, str]] = []
    with progress_bar(total=len(items), desc=desc, unit="item", enabled=progress) as bar:
        if workers <= 1 and not isolate:
            for index, item in enumerate(items):
                try:
                    results[index] = task(item)
                except Exception:
                    if not keep_going:
                        raise
                    failures.append((label(item), traceback.format_exc()))
                bar.update()
                if stopped_early(results[index]):
                    break
            return results, failures
        for index, outcome in _run_in_processes(task, items, max(1, workers), isolate):
            ok, value = outcome
            if ok:
                results[index] = value
            elif keep_going:
                failures.append((label(items[index]), value))
            else:
                raise ItemFailed(f"{desc}: {label(items[index])} failed:\n{value}")
            bar.update()
    return results, failures


def run_workload(workload: Workload, *, workers: int = 1, progress: bool = True) -> WorkloadResult:
    """Run a workload on this machine: its items, then its follow-up as its condition says (afterok: raise
    WorkloadFailed naming the failed items instead of running it). When an item stops early on request, neither the
    items after it nor the follow-up run (`stopped`); running the workload again resumes."""
    results, failures = run_items(
        workload.task,
        workload.items,
        workers=workers,
        isolate=workload.isolate,
        label=workload.label,
        desc=workload.name,
        progress=progress,
    )
    for name, error in failures:
        log.error("%s %s failed:\n%s", workload.name, name, error)
    stopped = [
        workload.label(item)
        for item, result in zip(workload.items, results)
        if stopped_early(result)
    ]
    if stopped:
        log.warning(
            "%s: %s stopped on request; the rest of the workload did not run: run the same command again to "
            "resume",
            workload.name,
            ", ".join(stopped),
        )
        return WorkloadResult(results, failures, stopped=True)
    if failures and workload.condition == "afterok":
        names = ", ".join(name for name, _ in failures)
        raise WorkloadFailed(
            f"{workload.name}: {len(failures)} of {len(workload.items)} items failed ({names}); "
            f"the follow-up did not run"
        )
    return WorkloadResult(results, failures, workload.then(*workload.then_args))


def _die_with_parent(parent: int) -> None:
    """Linux: ask the kernel to end this process when its parent dies (no orphaned workers after a kill -9). A
    parent that died while this process was starting, before the request, is caught by comparing parent pids."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        raise SystemExit(
            f"worker {os.getpid()}: its parent {parent} ended before it started; not running"
        )


def _worker(
    task: Callable[[Any], Any], connection: Connection, parent: int, one_item: bool
) -> None:
    """A spawned worker: run task(item) for every (index, item) the parent sends, answer (ok, value or
    traceback) for each; stop at None, or after one item when `one_item` (isolated items)."""
    _die_with_parent(parent)
    while (message := connection.recv()) is not None:
        _, item = message
        try:
            outcome = (True, task(item))
        except BaseException:
            outcome = (False, traceback.format_exc())
        connection.send(outcome)
        if one_item:
            break
    connection.close()


def _run_in_processes(
    task: Callable[[Any], Any], items: Sequence[Any], workers: int, isolate: bool
):
    """Yield (index, (ok, value or traceback)) as items finish, in at most `workers` spawned processes that take
    one item after another (isolate: a fresh process for every item). A process that dies without a word fails
    only the item it held; a new one takes its place."""
    context = multiprocessing.get_context("spawn")
    pending = list(enumerate(items))
    idle: list[tuple[Connection, Any]] = []
    busy: dict[Connection, tuple[int, Any]] = {}
    try:
        while pending or busy:
            while pending and len(busy) < workers:
                if idle:
                    connection, process = idle.pop()
                else:
                    connection, remote = context.Pipe()
                    process = context.Process(
                        target=_worker, args=(task, remote, os.getpid(), isolate)
                    )
                    with _child_environment(workers):
                        process.start()
                    remote.close()
                index, item = pending.pop(0)
                connection.send((index, item))
                busy[connection] = (index, process)
            for connection in wait(list(busy)):
                index, process = busy.pop(connection)
                try:
                    outcome = connection.recv()
                except EOFError:  # the process ended without a word (killed, out of memory)
                    process.join()
                    outcome = (
                        False,
                        f"the process exited with code {process.exitcode} without a result",
                    )
                    connection.close()
                else:
                    if isolate:
                        process.join()
                        connection.close()
                    else:
                        idle.append((connection, process))
                yield index, outcome
        for connection, process in idle:
            connection.send(None)
            process.join()
    finally:
        for process in [process for _, process in idle] + [process for _, process in busy.values()]:
            if process.is_alive():
                process.terminate()
            process.join()


@contextlib.contextmanager
def _child_environment(workers: int):
    """Processes started inside see: the cores shared out (OMP_NUM_THREADS, unless the user set it) and, when
    several run at once, no progress bars of their own (only the parent's bar over items shows)."""
    changes = (
        {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))} if workers > 1 else {}
    )
    if workers > 1:
        changes["TQDM_DISABLE"] = "1"
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update({k: v for k, v in changes.items() if k == "TQDM_DISABLE" or saved[k] is None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
