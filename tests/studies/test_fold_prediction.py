"""The prediction for folds not yet run, from eval results files of other folds, and its check."""

import json

import numpy as np
import pytest
from foundation.studies.fold_prediction import (
    PredictionError,
    check_record,
    main,
    prediction_record,
)


def _results(path, folds, pretraining_seed=0, gain=0.1, noise=0.02, seed=0):
    """An eval results.json whose pre-trained arm is `gain` better than scratch (relative), per fold and seed."""
    rng = np.random.default_rng(seed)
    units = []
    for size in (100, 300):
        for fold in folds:
            fold_scale = 1.0 + 0.1 * fold
            for ft_seed in range(3):
                scratch = fold_scale * (0.5 if size == 100 else 0.4) + rng.normal(0, noise)
                pre = scratch * (1 - gain) + rng.normal(0, noise)
                for variant, mae in (("scratch", scratch), ("pretrained", pre)):
                    units.append(
                        {
                            "variant": variant,
                            "fold": fold,
                            "seed": ft_seed,
                            "size": size,
                            "metrics": {"mae": mae},
                        }
                    )
    body = {
        "format": "foundation-eval",
        "command": "foundation eval ...",
        "checkpoint": {
            "sha256": f"{pretraining_seed:064x}",
            "training_config": {"train": {"seed": pretraining_seed}},
        },
        "tasks": [{"name": "dielectric", "category": "finetune", "units": units}],
    }
    path.write_text(json.dumps(body))
    return path


def test_prediction_from_folds_0_2_says_what_its_interval_leaves_out(tmp_path):
    results = _results(tmp_path / "results.json", [0, 1, 2])
    record = prediction_record([results], "dielectric", [3, 4], "cmd")
    assert record["from_folds"] == [0, 1, 2] and record["predicted_folds"] == [3, 4]
    rows = {(r["treatment"], r["size"]): r for r in record["predictions"]}
    assert set(rows) == {("pretrained", 100), ("pretrained", 300)}  # no probe units here
    for row in rows.values():
        assert row["ratio"] == pytest.approx(0.9, abs=0.05)
        assert row["ratio_ci95"][0] < row["ratio"] < row["ratio_ci95"][1]
        low, high = row["ratio_prediction95"]
        # two new folds vary more than the mean over three measured ones
        assert low < row["ratio_ci95"][0] and high > row["ratio_ci95"][1]
        assert row["note"] == (
            "one pre-training seed: the interval does not cover pre-training variance"
        )
    assert record["results"][0]["pretraining_seed"] == 0


def test_two_pretraining_runs_are_the_pretraining_level(tmp_path):
    first = _results(tmp_path / "a.json", [0, 1, 2], pretraining_seed=0, gain=0.15)
    second = _results(tmp_path / "b.json", [0, 1, 2], pretraining_seed=1, gain=0.0, seed=1)
    record = prediction_record([first, second], "dielectric", [3, 4], "cmd")
    row = record["predictions"][0]
    assert row["levels"]["pre-training seeds"] == 2 and row["note"] == ""
    assert row["ratio_ci95"][0] < 0.87 and row["ratio_ci95"][1] > 0.97  # spans both runs' gains
    with pytest.raises(PredictionError, match="pre-training seed 0"):
        prediction_record([first, first], "dielectric", [3, 4], "cmd")


def test_the_predicted_folds_must_not_be_in_the_results(tmp_path):
    results = _results(tmp_path / "results.json", [0, 1, 2, 3])
    with pytest.raises(PredictionError, match=r"folds \[3\]"):
        prediction_record([results], "dielectric", [3, 4], "cmd")
    with pytest.raises(PredictionError, match="no fine-tuning task 'other'"):
        prediction_record([results], "other", [4], "cmd")


def test_check_says_whether_the_prediction_held(tmp_path):
    source = _results(tmp_path / "folds012.json", [0, 1, 2])
    prediction = tmp_path / "prediction.json"
    assert (
        main(
            [
                "predict",
                str(source),
                "--task",
                "dielectric",
                "--folds",
                "3",
                "4",
                "--out",
                str(prediction),
            ]
        )
        == 0
    )
    same = _results(tmp_path / "same.json", [3, 4], seed=5)
    worse = _results(tmp_path / "worse.json", [3, 4], gain=-0.3, seed=5)
    held = check_record(prediction, [same], "cmd")["checks"]
    missed = check_record(prediction, [worse], "cmd")["checks"]
    assert all(c["ratio_held"] and c["measured_pairs"] == 6 for c in held)
    assert not any(c["ratio_held"] for c in missed)
    assert all(c["measured_ratio"] > 1.2 for c in missed)
    # results of a fold that was not predicted are refused, and the command says so in one line
    stray = _results(tmp_path / "stray.json", [2, 3])
    with pytest.raises(PredictionError, match=r"folds \[2\] were not predicted"):
        check_record(prediction, [stray], "cmd")
    assert main(["check", str(prediction), str(stray)]) == 2
