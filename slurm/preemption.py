"""How a long job ends early and comes back: stop signals, a checkpoint on every rank, then requeue.

- USR2 (Slurm sends it `signal_delay_s` before the time limit, and on preemption; submitit-local likewise):
  the job asks its work to stop at the next safe point, every rank saves, then rank 0 rewrites the job's
  submission with `checkpoint()`'s DelayedSubmission and requeues it (submitit's protocol, but after the save
  has finished instead of inside the signal handler, where a collective save cannot run).
- SIGTERM (`scancel`, `scontrol requeue`, node shutdown): stop, save when there is time, exit; Slurm decides
  whether the job comes back (it does after `scontrol requeue`), and then it resumes from the newest complete
  checkpoint.
A stopped task never writes a result file, so a client waiting on the job sees the requeued run's result.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn

PREEMPTED = "preempted"
TERMINATED = "terminated"


class StopSignals:
    """Context manager: USR2 and TERM call `request_stop()`; afterwards `reason` says which arrived (TERM wins:
    Slurm is ending the job). The signals are read from a wakeup fd (signal.set_wakeup_fd), so `reason` is right
    even when the work installs its own handlers for the same signals while it runs (run_training does)."""

    def __init__(self, request_stop: Callable[[], None]):
        self.request_stop = request_stop
        self.reason: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.request_stop()

    def __enter__(self) -> StopSignals:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._old_fd)
        seen = set()
        try:
            while chunk := os.read(self._read, 4096):
                seen.update(chunk)
        except BlockingIOError:
            pass
        os.close(self._read)
        os.close(self._write)
        if signal.SIGTERM in seen:
            self.reason = TERMINATED
        elif signal.SIGUSR2 in seen:
            self.reason = PREEMPTED


def end_stopped_task(reason: str | None) -> NoReturn:
    """Finish a task whose work stopped on a signal, without a result file: after USR2 rank 0 requeues the job
    and exits -1 (submitit's convention); every other case exits 0, so srun --kill-on-bad-exit spares rank 0."""
    import submitit

    env = submitit.JobEnvironment()
    if reason == PREEMPTED and env.global_rank == 0:
        _requeue(env)
        sys.exit(-1)
    sys.exit(0)


def _requeue(env: object) -> None:
    from submitit.core.job_environment import _checkpoint
    from submitit.core.utils import DelayedSubmission, UncompletedJobError

    paths = env.paths  # type: ignore[attr-defined]
    delayed = DelayedSubmission.load(paths.submitted_pickle)
    countdown = delayed._timeout_countdown - 1
    if countdown < 0:
        raise UncompletedJobError(
            "job stopped and was not requeued: it used up its requeues (cluster.max_requeues)"
        )
    why_not = _checkpoint(delayed, paths.submitted_pickle, countdown)
    if why_not:
        raise UncompletedJobError(f"job stopped and was not requeued: {why_not}")
    env._requeue(countdown)  # type: ignore[attr-defined]
