"""The preemption protocol on Slurm with a small Checkpointable: USR2 (what Slurm sends before the time limit or on
preemption) -> the work stops at a safe point -> rank 0 requeues the job -> the requeued job continues."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import submitit
from foundation.slurm.executor import make_executor
from foundation.slurm.preemption import StopSignals, end_stopped_task
from foundation.slurm.profiles import load_profile

pytestmark = pytest.mark.slurm


class Counter(submitit.helpers.Checkpointable):
    """Counts to `total` in DIR/count, one step per 0.2 s, continuing from the count it finds."""

    def __init__(self, directory: str, total: int):
        self.directory, self.total = directory, total
        self.stop = False

    def request_stop(self) -> None:
        self.stop = True

    def __call__(self) -> tuple[int, str | None]:
        path = Path(self.directory) / "count"
        count = int(path.read_text()) if path.exists() else 0
        self.stop = False
        with StopSignals(self.request_stop) as signals:
            while count < self.total and not self.stop:
                time.sleep(0.2)
                count += 1
                path.write_text(str(count))
        if self.stop:
            end_stopped_task(signals.reason)
        return count, os.environ.get("SLURM_RESTART_COUNT")

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        self.request_stop()
        return submitit.helpers.DelayedSubmission(Counter(self.directory, self.total))


def test_usr2_checkpoints_and_requeues_itself(slurm_cluster, slurm_workdir):
    directory = slurm_workdir / "counter"
    directory.mkdir()
    executor = make_executor(
        "slurm", directory / "slurm", load_profile("local", ["tasks_per_node=1"]), name="count"
    )
    job = executor.submit(Counter(str(directory), 25))
    count = directory / "count"
    end = time.monotonic() + 300
    while not (count.exists() and count.read_text() and int(count.read_text()) >= 3):
        assert time.monotonic() < end and not job.done(), job.stderr()
        time.sleep(0.05)
    job._interrupt(
        timeout=True
    )  # scancel --signal USR2: what Slurm sends signal_delay_s before the time limit
    total, restarts = job.result()
    assert (total, restarts) == (25, "1")  # requeued once, finished from where it stopped
    log = job.stdout()  # submitit's log of both runs (srun --open-mode=append)
    assert (
        "Calling checkpoint method" in log
        and "Requeued job" in log
        and log.count("Starting with") == 2
    )
