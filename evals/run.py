"""An eval run as a workload: one item per unfinished unit (`run_unit`), then the report (`reduce_units`, afterany:
it is written even when units failed, and lists them as missing). `evaluate` runs it on this machine; the Slurm
launcher submits the same workload as an array plus a dependent reducer job."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from foundation.evals.config import SuiteConfig
from foundation.evals.reduce import reduce_units
from foundation.evals.suite import Unit, prepare_run, run_unit

from foundation.jobs import Workload, job_folder, run_workload

log = logging.getLogger(__name__)


def _unit_key(unit: Unit) -> str:
    return unit.key


def eval_workload(
    out_dir: str | os.PathLike, checkpoint: str | os.PathLike, suite: SuiteConfig, command: str = ""
) -> Workload:
    """Prepare OUT_DIR (resolved suite, checkpoint identity) and describe the units still to run, then the report."""
    units = prepare_run(out_dir, checkpoint, suite, command=command)
    todo = [unit for unit in units if not unit.result_path.is_file()]
    log.info("%d units (%d already done) -> %s", len(units), len(units) - len(todo), out_dir)
    return Workload(
        name="eval",
        folder=job_folder(out_dir),
        task=run_unit,
        items=todo,
        then=reduce_units,
        then_args=(str(Path(out_dir).resolve()),),
        condition="afterany",
        label=_unit_key,
        info={"units": len(units), "submitted_units": len(todo)},
    )


def evaluate(
    checkpoint: str | os.PathLike,
    suite: SuiteConfig,
    out_dir: str | os.PathLike,
    *,
    workers: int = 1,
    command: str = "",
) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Prepare, run every unit on this machine and reduce: ({report file name: path}, [(failed unit, traceback)]).
    The report is written even when some units fail (they are listed in it as missing)."""
    done = run_workload(eval_workload(out_dir, checkpoint, suite, command=command), workers=workers)
    return done.final, done.failures
