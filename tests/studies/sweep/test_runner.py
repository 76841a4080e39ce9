"""Point markers: a finished point with a changed config is refused; run summaries are checked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.grid import expand_grid, point_hash
from foundation.studies.sweep.runner import (
    DONE,
    FAILED,
    SweepError,
    collect,
    final_val_metrics,
    point_state,
    points_to_run,
    run_point,
)

from foundation.data.writer import write_dataset
from foundation.jobs import run_items
from tests.data.helpers import full_frame
from tests.studies.sweep.test_grid import sweep_mapping


@pytest.fixture
def points(tmp_path):
    pts = expand_grid(load_sweep_config(sweep_mapping(tmp_path, seeds=[0])))
    for p in pts:
        write_dataset(p.data_path, {"train": [full_frame(seed=i) for i in range(3)]})
    return pts


def test_states_come_from_markers_and_a_changed_config_is_refused(points):
    done, failed = points[0], points[1]
    for p in (done, failed):
        Path(p.run_dir).mkdir(parents=True)
    (Path(done.run_dir) / DONE).write_text(
        json.dumps(
            {
                "point_id": done.point_id,
                "config_hash": point_hash(done),
                "metrics": {"forces_mae": 0.25},
                "loss": 99.0,
            }
        )
    )
    (Path(failed.run_dir) / FAILED).write_text(
        json.dumps({"point_id": failed.point_id, "error": "E"})
    )
    assert [point_state(p) for p in points] == ["done", "failed", "pending", "pending"]
    gathered = collect(points)
    assert [r["point_id"] for r in gathered["points"]] == [done.point_id]
    assert gathered["points"][0]["loss"] == 0.25  # recomputed with the sweep's current weights
    assert gathered["pending"] == [p.point_id for p in points[2:]]
    write_dataset(done.data_path, {"train": [full_frame(seed=9)]})  # its data changed under it
    with pytest.raises(SweepError, match="different config"):
        point_state(done)


def test_final_metrics_must_exist_and_be_finite(tmp_path):
    summary = {"val": {"forces_mae": 0.1, "energy_mae": math.nan}}
    assert final_val_metrics(summary, ["forces_mae"], tmp_path) == {"forces_mae": 0.1}
    with pytest.raises(SweepError, match="no \\['stress_mae'\\]"):
        final_val_metrics(summary, ["stress_mae"], tmp_path)
    with pytest.raises(SweepError, match="diverged"):
        final_val_metrics(summary, ["energy_mae"], tmp_path)


def test_a_point_that_raises_in_its_process_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    pts = expand_grid(load_sweep_config(sweep_mapping(tmp_path, seeds=[0])))[
        :2
    ]  # no data written: both fail
    results, failures = run_items(
        run_point, pts, isolate=True, progress=False
    )  # each in its own process
    assert results == [None, None] and len(failures) == 2
    assert [point_state(p) for p in pts] == ["failed", "failed"]
    failure = json.loads((Path(pts[0].run_dir) / FAILED).read_text())
    assert "manifest" in failure["error"] and "Traceback" in failure["traceback"]
    assert points_to_run(pts) == [] and points_to_run(pts, ["failed"]) == pts
    assert points_to_run(pts, [pts[1].point_id]) == [pts[1]]
    with pytest.raises(SweepError, match="no such point"):
        points_to_run(pts, ["nope"])


def test_budgets_become_step_caps_and_convergence_overrides():
    from types import SimpleNamespace

    from foundation.studies.sweep.runner import _budget_steps

    cost = SimpleNamespace(flops_per_step=100.0)
    point = SimpleNamespace(budget_kind="flops", budget=1e4, convergence=None)
    assert _budget_steps(point, cost, 10.0) == (100, [])
    conv = {"max_passes": 10, "patience": 3, "validate_every_passes": 0.5, "min_validate_steps": 2}
    point = SimpleNamespace(budget_kind="converge", budget=10, convergence=conv)
    # 10 steps a pass: a validation every 5 steps; 100 steps at most
    assert _budget_steps(point, cost, 10.0) == (
        100,
        ["train.val_every=5", "train.checkpoint_every=5", "train.early_stop_patience=3"],
    )
    assert (
        _budget_steps(point, cost, 2.0)[1][0] == "train.val_every=2"
    )  # never more often than min_validate_steps


def test_steps_per_pass_are_one_epoch_of_training(tmp_path):
    from foundation.studies.sweep.runner import steps_per_pass

    from foundation.train.config import load_train_config
    from foundation.train.runner import run_training
    from tests.train.helpers import make_dataset, tiny_config

    path = make_dataset(tmp_path / "data")  # 48 training frames of <= 12 atoms
    cfg = tiny_config(
        path, tmp_path / "run", data={"path": str(path), "max_atoms": 24, "num_workers": 0}
    )
    per_pass = steps_per_pass(load_train_config(cfg))
    assert per_pass == int(per_pass) and 1 < per_pass < 48
    train = {"log_every": 1000, "val_every": 1000, "checkpoint_every": 1000, "progress": False}
    done = run_training(load_train_config({**cfg, "train": {**train, "max_steps": int(per_pass)}}))
    assert done["epoch"] == 0  # the first pass used every step of epoch 0 ...
    more = run_training(
        load_train_config({**cfg, "train": {**train, "max_steps": int(per_pass) + 1}})
    )
    assert more["epoch"] == 1  # ... and the next step starts epoch 1


def test_a_converged_point_records_steps_passes_stop_baselines_and_dft_only_validation(tmp_path):
    from foundation.studies.sweep.study import prepare_sweep

    from tests.studies.sweep.test_grid import converge_mapping
    from tests.train.helpers import element_references, real_frames
    from tests.train.test_validation import teacher_frames

    dft, teacher = real_frames(20), teacher_frames()
    write_dataset(
        tmp_path / "src",
        {"train": dft[:12], "val": dft[12:] + teacher},
        element_references=element_references(dft + teacher),
    )
    mapping = converge_mapping(
        tmp_path,
        data={"source": str(tmp_path / "src"), "frames": [8]},
        prediction=None,
        readout={"validation_sources": ["MPtrj"]},
        loss={"forces_mae": 1.0},
        convergence={
            "max_passes": 3,
            "patience": 2,
            "validate_every_passes": 1.0,
            "min_validate_steps": 1,
        },
    )
    mapping["models"] = [
        {
            "name": "a",
            "model": "scalable-xs",
            "overrides": {"backbone.hidden": 4, "backbone.layers": 1},
        }
    ]
    point = prepare_sweep(load_sweep_config(mapping), progress=False)[0]
    result = run_point(point)
    assert result["role"] == "grid" and 1 <= result["steps"] <= result["max_steps"]
    assert result["passes"] == pytest.approx(result["steps"] / result["steps_per_pass"])
    assert (
        result["hit_cap"] == (result["steps"] >= result["max_steps"]) and result["val_every"] >= 1
    )
    assert result["early_stopped"] or result["hit_cap"]
    best = json.loads((Path(point.run_dir) / "best" / "model.json").read_text())["val"]
    assert result["metrics"] == {"forces_mae": best["forces_mae"]}  # read at the best validation
    mptrj_val = np.concatenate(
        [f.forces.reshape(-1) for f in dft[12:]]
    )  # zero forces: the baseline's MAE
    assert result["baseline_metrics"]["forces_mae"] == pytest.approx(
        np.abs(mptrj_val).mean(), rel=1e-5
    )
    assert result["baseline_loss"] == result["baseline_metrics"]["forces_mae"]
    assert "forces_mae" in result["excluded_metrics"]  # the teacher frames, reported apart
    assert collect([point])["points"][0]["loss"] == result["loss"]
