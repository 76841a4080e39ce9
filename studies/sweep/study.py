"""A sweep as a whole, in stages: prepare it (nested subsets, resolved config, points), run the grid points (a
workload: one item per point, each in its own process), then `finish_sweep`: the prediction stage (design
data_scaling with a `prediction`: once every grid point has finished, predict the point beyond the grid from the
fits and write OUT_DIR/prediction.json, then run that point's seeds) and the report. Every stage resumes: finished
points are never rerun, a written prediction is never rewritten."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foundation.studies.scaling.analysis import FitRules, analyse
from foundation.studies.scaling.prediction import (
    compare,
    make_prediction,
    prediction_path,
    read_prediction,
    write_prediction,
)
from foundation.studies.scaling.report import write_scaling_report
from foundation.studies.sweep.config import SweepConfig, load_sweep_config
from foundation.studies.sweep.flops import parameter_count
from foundation.studies.sweep.grid import SweepPoint, data_sizes, expand_grid, prediction_points
from foundation.studies.sweep.runner import (
    SweepError,
    collect,
    point_state,
    points_to_run,
    run_point,
)
from foundation.studies.sweep.subsets import write_nested_subsets

from foundation.config import ConfigError, save_config
from foundation.data.manifest import Manifest
from foundation.jobs import Workload, job_folder, run_items
from foundation.models import build_potential
from foundation.train.config import load_train_config

RESOLVED_NAME = "sweep.yaml"
log = logging.getLogger(__name__)


def prepare_sweep(config: SweepConfig, *, progress: bool = True) -> list[SweepPoint]:
    """Write the nested data subsets (reused when already there; the predicted point's size included), save the
    resolved sweep config as out_dir/sweep.yaml, and return every grid point."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / RESOLVED_NAME)
    try:
        write_nested_subsets(
            config.data.source,
            out / "data",
            data_sizes(config),
            seed=config.data.seed,
            progress=progress,
        )
    except ValueError as exc:  # a size beyond the training split
        raise ConfigError(f"data.frames / prediction.frames: {config.data.source}: {exc}") from None
    return expand_grid(config)


def fit_rules(config: SweepConfig) -> FitRules:
    return FitRules(
        design=config.design,
        baseline_ratio=config.readout.baseline_ratio,
        min_points_per_parameter=config.fit.min_points_per_parameter,
        min_distinct=config.fit.min_distinct,
        n_boot=config.fit.n_boot,
        confidence=config.fit.confidence,
        seed=config.fit.seed,
    )


def sweep_results(
    config: SweepConfig, points: Sequence[SweepPoint], command: str
) -> dict[str, Any]:
    """Everything the report needs: the sweep's description and each point's result, failure or absence."""
    return {
        "sweep": {
            "name": config.name,
            "design": config.design,
            "base_config": config.base_config,
            "data_source": config.data.source,
            "data_seed": config.data.seed,
            "validation_sources": list(config.readout.validation_sources),
            "loss_formula": config.loss_formula,
            "command": command,
            "out_dir": config.out_dir,
        },
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "confidence": config.fit.confidence,
        "metric_names": list(config.loss),
        **collect(points),
    }


def _point_id(point: SweepPoint) -> str:
    return point.point_id


def sweep_workload(
    config: SweepConfig, retry: Sequence[str] = (), command: str = "", workers: int = 1
) -> Workload:
    """Prepare the sweep and describe it as a workload: every grid point to run (`points_to_run`), each in a fresh
    process, then `finish_sweep` (afterany: the prediction stage and the report; failed points are listed in the
    report, rerun with retry). `workers`: how many prediction runs the follow-up runs side by side."""
    points = prepare_sweep(config)
    todo = [p for p in points_to_run(points + prediction_points(config), retry) if p.role == "grid"]
    resolved = str((Path(config.out_dir) / RESOLVED_NAME).resolve())
    return Workload(
        name="sweep",
        folder=job_folder(config.out_dir),
        task=run_point,
        items=todo,
        then=finish_sweep,
        then_args=(resolved, command, workers, tuple(retry)),
        condition="afterany",
        isolate=True,
        label=_point_id,
        info={"points": len(points), "submitted_points": len(todo)},
    )


def finish_sweep(
    config_path: str, command: str = "", workers: int = 1, retry: Sequence[str] = ()
) -> dict[str, Any]:
    """The stages after the grid: the prediction (when configured) and the report."""
    config = load_sweep_config(config_path)
    if config.prediction is not None:
        run_prediction_stage(config, workers=workers, retry=retry)
    return write_sweep_report(config_path, command)


def predict(
    config: SweepConfig, grid: Sequence[SweepPoint], predicted: Sequence[SweepPoint]
) -> dict[str, Any]:
    """The prediction record of the point beyond the grid, from the fits of the finished grid."""
    analysis = analyse(collect(grid)["points"], list(config.loss), fit_rules(config))
    train = load_train_config(predicted[0].train_config)
    n_params = parameter_count(build_potential(train.model, train.model_overrides))
    frames = int(Manifest.load(predicted[0].data_path).extra["subset"]["frames"])
    return make_prediction(
        analysis,
        n_params=n_params,
        frames=frames,
        seeds=len(predicted),
        point_ids=[p.point_id for p in predicted],
        confidence=config.fit.confidence,
        seed=config.fit.seed,
    )


def run_prediction_stage(
    config: SweepConfig, *, workers: int = 1, retry: Sequence[str] = ()
) -> dict[str, Any] | None:
    """Once every grid point is done: write the prediction (first, and only once), then run the predicted point's
    seeds that are pending (or failed and retried). Returns the prediction record (None while the grid is not
    finished)."""
    grid, predicted = expand_grid(config), prediction_points(config)
    record = read_prediction(config.out_dir)
    if record is None:
        unfinished = [p.point_id for p in grid if point_state(p) != "done"]
        if unfinished:
            log.info(
                "prediction waits for %d unfinished grid points (%s, ...)",
                len(unfinished),
                unfinished[0],
            )
            return None
        record = predict(config, grid, predicted)
        write_prediction(config.out_dir, record)
    if record["point_ids"] != [p.point_id for p in predicted]:
        raise SweepError(
            f"{prediction_path(config.out_dir)} predicts {record['point_ids']}, not this config's "
            f"predicted point {[p.point_id for p in predicted]}; delete it to predict again"
        )
    if record.get("refused"):
        log.warning("no prediction: %s", record["refused"])
        return record
    todo = points_to_run(
        predicted, [r for r in retry if r in {p.point_id for p in predicted} or r == "failed"]
    )
    if todo:
        run_items(
            run_point, todo, workers=workers, isolate=True, label=_point_id, desc="predicted point"
        )
    return record


def write_sweep_report(config_path: str, command: str = "") -> dict[str, Any]:
    """Fit and write OUT_DIR/report/ from whatever points have finished (the prediction beside its measurement
    when there is one); returns the report's paths and the done / failed / pending points."""
    config = load_sweep_config(config_path)
    prediction = read_prediction(config.out_dir)
    predicted = (
        prediction_points(config)
        if prediction is not None and not prediction.get("refused")
        else []
    )
    results = sweep_results(config, expand_grid(config) + predicted, command)
    if prediction is not None:
        prediction["comparison"] = compare(prediction, results["points"])
    paths = write_scaling_report(results, f"{config.out_dir}/report", fit_rules(config), prediction)
    return {
        "paths": {name: str(path) for name, path in paths.items()},
        "done": len(results["points"]),
        "failed": results["failed"],
        "pending": results["pending"],
        "prediction": prediction,
    }
