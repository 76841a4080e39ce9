"""A sweep as a whole: prepare it (nested subsets, resolved config, points), describe it as a batch (one item
per point to run, in its own process, then the fits and report), and gather its results for the report
(foundation.studies.scaling.report renders them)."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Sequence

from foundation.config import save_config
from foundation.jobs import Batch, job_folder
from foundation.studies.scaling.report import write_scaling_report
from foundation.studies.sweep.config import SweepConfig, load_sweep_config
from foundation.studies.sweep.grid import SweepPoint, expand_grid
from foundation.studies.sweep.runner import collect, points_to_run, run_point
from foundation.studies.sweep.subsets import write_nested_subsets

RESOLVED_NAME = "sweep.yaml"


def prepare_sweep(config: SweepConfig, *, progress: bool = True) -> list[SweepPoint]:
    """Write the nested data subsets (reused when already there), save the resolved sweep config as
    out_dir/sweep.yaml, and return every point of the grid."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / RESOLVED_NAME)
    write_nested_subsets(config.data.source, out / "data", config.data.frames, seed=config.data.seed,
                         progress=progress)
    return expand_grid(config)


def sweep_results(config: SweepConfig, points: Sequence[SweepPoint], command: str) -> dict[str, Any]:
    """Everything the report needs: the sweep's description and each point's result, failure or absence."""
    return {
        "sweep": {"name": config.name, "base_config": config.base_config, "data_source": config.data.source,
                  "data_seed": config.data.seed, "loss_formula": config.loss_formula, "command": command,
                  "out_dir": config.out_dir},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "confidence": config.fit.confidence,
        "metric_names": list(config.loss),
        **collect(points),
    }


def _point_id(point: SweepPoint) -> str:
    return point.point_id


def sweep_batch(config: SweepConfig, retry: Sequence[str] = (), command: str = "") -> Batch:
    """Prepare the sweep and describe it as a batch: every point to run (`points_to_run`), each in a fresh
    process, then `write_sweep_report` (afterany: failed points are listed in the report, rerun with retry)."""
    points = prepare_sweep(config)
    todo = points_to_run(points, retry)
    resolved = str((Path(config.out_dir) / RESOLVED_NAME).resolve())
    return Batch(name="sweep", folder=job_folder(config.out_dir), task=run_point, items=todo,
                 then=write_sweep_report, then_args=(resolved, command), condition="afterany", isolate=True,
                 label=_point_id, info={"points": len(points), "submitted_points": len(todo)})


def write_sweep_report(config_path: str, command: str = "") -> dict[str, Any]:
    """Fit and write OUT_DIR/report/ from whatever points have finished; returns the report's paths and the
    done / failed / pending points."""
    config = load_sweep_config(config_path)
    results = sweep_results(config, expand_grid(config), command)
    paths = write_scaling_report(results, f"{config.out_dir}/report", n_boot=config.fit.n_boot, seed=config.fit.seed)
    return {"paths": {name: str(path) for name, path in paths.items()}, "done": len(results["points"]),
            "failed": results["failed"], "pending": results["pending"]}
