"""The stages after the grid: the prediction is written before its point runs, once; the report sets the
measurement beside it; nothing finished reruns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from foundation.studies.sweep import study
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.flops import parameter_count
from foundation.studies.sweep.grid import point_hash, prediction_points
from foundation.studies.sweep.runner import DONE

from foundation.data.manifest import Manifest
from foundation.data.writer import write_dataset
from foundation.files import write_text_atomic
from foundation.models import build_potential
from foundation.train.config import load_train_config
from tests.data.helpers import full_frame
from tests.studies.scaling.synthetic import data_law, point
from tests.studies.sweep.test_grid import converge_mapping

SIZES = [4, 6, 8, 12, 16, 20]


@pytest.fixture
def sweep(tmp_path):
    """A data_scaling sweep of 2 models x 6 data sizes x 2 seeds, prepared (subsets written), with a prediction
    at 40 frames for the larger model."""
    write_dataset(
        tmp_path / "src",
        {
            "train": [full_frame(seed=i) for i in range(60)],
            "val": [full_frame(seed=100 + i) for i in range(4)],
        },
    )
    config = load_sweep_config(
        converge_mapping(
            tmp_path,
            data={"source": str(tmp_path / "src"), "frames": SIZES},
            readout={},
            fit={"n_boot": 50},
        )
    )
    grid = study.prepare_sweep(config, progress=False)
    path = str(Path(config.out_dir) / study.RESOLVED_NAME)
    return config, grid, path


def n_params_of(p) -> int:
    train = load_train_config(p.train_config)
    return parameter_count(build_potential(train.model, train.model_overrides))


def finish(p, loss_of) -> None:
    """A finished point's marker, with the fields run_point writes and a loss from `loss_of(n, frames)`."""
    frames = int(Manifest.load(p.data_path).extra["subset"]["frames"])
    n = n_params_of(p)
    result = point(
        p.model, n, p.target_frames, p.seed, loss_of(n, frames) * (1.01 if p.seed else 0.99)
    )
    result.update(point_id=p.point_id, frames=frames, role=p.role, config_hash=point_hash(p))
    Path(p.run_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(p.run_dir) / DONE, json.dumps(result))


def test_prediction_waits_for_the_grid(sweep, monkeypatch):
    config, grid, path = sweep
    for p in grid[:-1]:
        finish(p, data_law)
    monkeypatch.setattr(
        study, "run_items", lambda *a, **k: pytest.fail("nothing may run before the prediction")
    )
    assert study.run_prediction_stage(config) is None
    assert not (Path(config.out_dir) / "prediction.json").exists()


def test_prediction_is_written_before_its_point_runs_and_never_again(sweep, monkeypatch):
    config, grid, path = sweep
    for p in grid:
        finish(p, data_law)
    prediction_file = Path(config.out_dir) / "prediction.json"
    calls = []

    def run_items(task, items, **options):
        assert (
            prediction_file.exists()
        )  # the prediction is on disk before the predicted point starts
        calls.append([p.point_id for p in items])
        for p in items:
            finish(p, data_law)
        return [None] * len(items), []

    monkeypatch.setattr(study, "run_items", run_items)
    summary = study.finish_sweep(path, "foundation sweep ...", workers=2)
    assert calls == [["b-D40-conv-seed0", "b-D40-conv-seed1"]]
    record = json.loads(prediction_file.read_text())
    assert record["law"] == "L(D)" and record["point_ids"] == calls[0]
    assert record["n_params"] == n_params_of(prediction_points(config)[0])
    comparison = summary["prediction"]["comparison"]
    # the sweep's loss is 1 x forces_mae, 0.9 x the law in these markers
    assert comparison["finished_seeds"] == 2 and comparison["measured"] == pytest.approx(
        0.9 * data_law(record["n_params"], record["frames"])
    )
    md = Path(summary["paths"]["report.md"]).read_text()
    assert "Prediction beyond the grid" in md and "b-D40-conv-seed0" in md
    results = json.loads(Path(summary["paths"]["results.json"]).read_text())
    assert len(results["analysis"]["cells"]) == 12  # the predicted point is not fitted
    before = prediction_file.stat().st_mtime_ns
    study.finish_sweep(path)  # resumed: nothing runs, the prediction stays as written
    assert len(calls) == 1 and prediction_file.stat().st_mtime_ns == before


def test_a_refused_prediction_runs_nothing_and_says_why(sweep, monkeypatch):
    config, grid, path = sweep
    for p in grid:
        finish(p, data_law)
    for p in grid:
        marker = Path(p.run_dir) / DONE
        result = json.loads(marker.read_text())
        result["baseline_metrics"] = result[
            "metrics"
        ]  # every cell at its trivial baseline: flagged, left out
        write_text_atomic(marker, json.dumps(result))
    monkeypatch.setattr(
        study, "run_items", lambda *a, **k: pytest.fail("a refused prediction runs nothing")
    )
    summary = study.finish_sweep(path)
    assert summary["prediction"]["refused"].startswith("no fit covers")
    assert "The point was not run" in Path(summary["paths"]["report.md"]).read_text()
    assert summary["pending"] == []


def test_a_size_beyond_the_training_split_is_a_config_error(tmp_path):
    from foundation.config import ConfigError

    write_dataset(tmp_path / "src", {"train": [full_frame(seed=i) for i in range(30)]})
    config = load_sweep_config(
        converge_mapping(
            tmp_path,
            data={"source": str(tmp_path / "src"), "frames": SIZES},
            prediction={"frames": 500},
        )
    )
    with pytest.raises(ConfigError, match=r"prediction.frames: .*subset size 500 is outside 1..30"):
        study.prepare_sweep(config, progress=False)


def test_a_prediction_of_other_points_is_refused(sweep, monkeypatch):
    from foundation.studies.scaling.prediction import write_prediction
    from foundation.studies.sweep.runner import SweepError

    config, grid, _ = sweep
    write_prediction(
        config.out_dir,
        {"point_ids": ["b-D30-conv-seed0"], "refused": None, "loss": 1.0, "interval": [0.5, 2.0]},
    )
    monkeypatch.setattr(study, "run_items", lambda *a, **k: pytest.fail("nothing may run"))
    with pytest.raises(SweepError, match="delete it to predict again"):
        study.run_prediction_stage(config)
