"""The Matbench results file of one arm, from a tiny real eval run on the Matbench sample (5 official folds)."""

import json

import numpy as np
import pytest
import yaml
from foundation.evals.config import SuiteConfig
from foundation.evals.matbench_results import (
    MatbenchResultsError,
    benchmark_hash,
    main,
    matbench_record,
)

from foundation.cli.main import main as foundation_main
from foundation.config import load_config
from foundation.resources import config_file
from tests.conftest import FIXTURES

FOLDS = FIXTURES / "matbench" / "matbench_v0.1_dielectric_folds.json"


@pytest.fixture(scope="module")
def protocol_run(tiny_run, tmp_path_factory):
    """Both arms on every official fold of the sample, each trained on its whole training fold, 2 epochs."""
    tmp = tmp_path_factory.mktemp("protocol")
    suite = {
        "name": "tiny-protocol",
        "data_root": str(FIXTURES),
        "seeds": [0],
        "finetune": {"max_epochs": 2, "patience": 2, "batch_size": 16},
        "tasks": [
            {
                "name": "matbench_dielectric",
                "kind": "matbench",
                "path": "matbench/matbench_dielectric.json.gz",
                "folds_path": "matbench/matbench_v0.1_dielectric_folds.json",
                "train_sizes": ["all"],
            }
        ],
    }
    (tmp / "suite.yaml").write_text(yaml.safe_dump(suite))
    args = ["eval", "--checkpoint", str(tiny_run), "--suite", str(tmp / "suite.yaml")]
    assert foundation_main([*args, "--out", str(tmp / "out")]) == 0
    return tmp / "out" / "results.json"


def test_each_arm_in_the_matbench_layout_with_mae_over_folds(protocol_run, tmp_path):
    official = json.loads(FOLDS.read_text())["splits"]["matbench_dielectric"]
    units = json.loads(protocol_run.read_text())["tasks"][0]["units"]
    for arm in ("pretrained", "scratch"):
        out = tmp_path / f"tiny-{arm}.json"
        assert main([str(protocol_run), "--arm", arm, "--out", str(out)]) == 0
        body = json.loads(out.read_text())
        task = body["tasks"]["matbench_dielectric"]
        assert body["benchmark_name"] == task["benchmark_name"] == "matbench_v0.1"
        assert list(task["results"]) == [f"fold_{k}" for k in range(5)]
        maes = []
        for k in range(5):
            fold = task["results"][f"fold_{k}"]
            assert set(fold) == {"data", "parameters", "scores"}
            assert set(fold["data"]) == set(official[f"fold_{k}"]["test"])  # the whole test fold
            assert set(fold["scores"]) == {"mae", "rmse", "mape", "max_error"}
            unit = next(
                u for u in units if u["variant"] == arm and u["fold"] == k and u["size"] is None
            )
            assert fold["scores"]["mae"] == pytest.approx(unit["metrics"]["mae"])
            assert fold["parameters"]["n_train_fold"] == len(official[f"fold_{k}"]["train"])
            maes.append(fold["scores"]["mae"])
        summary = body["user_metadata"]["foundation"]
        assert summary["arm"] == arm and summary["complete"]
        assert summary["mae_mean"] == pytest.approx(np.mean(maes))
        assert summary["mae_std"] == pytest.approx(np.std(maes))
        # the hash matbench's from_file recomputes over the file as read
        stored = body.pop("hash")
        assert benchmark_hash(body) == stored


def test_refuses_what_cannot_make_a_matbench_file(protocol_run, tmp_path):
    results = json.loads(protocol_run.read_text())
    trimmed = tmp_path / "trimmed.json"
    for unit in results["tasks"][0]["units"]:
        unit.pop("predictions")
    trimmed.write_text(json.dumps(results))
    with pytest.raises(MatbenchResultsError, match="no test predictions"):
        matbench_record(trimmed, "pretrained")
    with pytest.raises(MatbenchResultsError, match="no fine-tuning task 'other'"):
        matbench_record(protocol_run, "pretrained", task="other")
    two_seeds = json.loads(protocol_run.read_text())
    units = two_seeds["tasks"][0]["units"]
    units += [{**u, "seed": 1} for u in units]
    doubled = tmp_path / "doubled.json"
    doubled.write_text(json.dumps(two_seeds))
    with pytest.raises(MatbenchResultsError, match=r"seeds \[0, 1\]"):
        matbench_record(doubled, "scratch")
    assert (
        matbench_record(doubled, "scratch", seed=1)["user_metadata"]["foundation"][
            "fine_tuning_seed"
        ]
        == 1
    )
    # the file name says which arm it holds
    assert main([str(protocol_run), "--arm", "scratch", "--out", str(tmp_path / "x.json")]) == 2


def test_the_protocol_config_fits_every_official_fold_whole_and_fixes_its_recipe():
    suite = load_config(SuiteConfig, config_file("evals", "matbench-dielectric-protocol"))
    (task,) = suite.tasks
    assert task.kind == "matbench" and task.folds is None  # all 5 official folds
    assert task.sizes() == [None] and task.scratch  # each arm on its whole training fold
    assert suite.seeds == [0]  # one model per fold, as Matbench records
    recipe = suite.finetune_for(task)
    # fixed in advance; early stopping reads the inner validation split only
    assert recipe.backbone_lr_grid is None and recipe.val_fraction > 0
