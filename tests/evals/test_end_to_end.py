"""`foundation eval` end to end on a tiny checkpoint: every kind of task, both variants, the process pool, the
report files, and resuming."""

import json

import pytest
import yaml

from foundation.cli.main import main
from tests.conftest import FIXTURES


def _suite(tmp_path):
    suite = {
        "name": "tiny",
        "data_root": str(FIXTURES),
        "seeds": [0],  # the Matbench sample: 60 structures
        "finetune": {
            "max_epochs": 3,
            "patience": 2,
            "batch_size": 8,
            "backbone_lr": 0.0005,
            "freeze": ["backbone.embedding"],
        },
        "tasks": [
            {
                "name": "dielectric",
                "kind": "matbench",
                "path": "matbench/matbench_dielectric.json.gz",
                "folds_path": "matbench/matbench_v0.1_dielectric_folds.json",
                "folds": [1],
                "max_structures": 40,
            },
            {
                "name": "bulk",
                "kind": "dcdft_finetune",
                "num_folds": 4,
                "folds": [0],
                "finetune": {"pooling": "sum"},
            },
            {"name": "eos", "kind": "dcdft_eos", "elements": ["Cu", "Al", "Si"]},
            {"name": "frames", "kind": "zeroshot", "split": "test"},
            {
                "name": "epa",
                "kind": "property",
                "property": "energy_per_atom",
                "split": "train",
                "num_folds": 4,
                "folds": [2],
                "scratch": False,
            },
        ],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture(scope="module")
def eval_run(tiny_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    out = tmp / "out"
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tiny_run),
            "--suite",
            str(_suite(tmp)),
            "--out",
            str(out),
            "--workers",
            "2",
        ]
    )
    assert code == 0
    return out


def test_eval_writes_every_report_file(eval_run, tiny_run):
    for name in ("results.json", "report.md", "report.html", "suite.yaml", "checkpoint.json"):
        assert (eval_run / name).is_file(), name
    results = json.loads((eval_run / "results.json").read_text())
    assert results["missing_units"] == []
    sha = results["checkpoint"]["sha256"]
    from foundation.files import sha256_file

    assert sha == sha256_file(tiny_run / "best" / "model.safetensors")
    assert results["checkpoint"]["pretraining_manifest"]["sha256"] == sha256_file(
        tiny_run.parent / "data" / "manifest.json"
    )
    tasks = {t["name"]: t for t in results["tasks"]}
    assert set(tasks["dielectric"]["summary"]) == {"pretrained", "scratch"}
    assert tasks["dielectric"]["description"]["num_structures"] == 60
    assert (
        len(tasks["dielectric"]["description"]["provenance"]) == 2
    )  # task file and folds file, with sha256
    unit = tasks["dielectric"]["units"][0]
    # max_structures caps the training fold; the official test fold is scored whole
    assert (
        unit["n_train"] + unit["n_val"] == 40 and unit["n_test"] == 10 and unit["epochs_run"] <= 3
    )
    assert set(unit["baselines"]) == {"mean", "median"}
    assert (
        tasks["frames"]["units"][0]["baselines"]["forces"]["n"]
        == tasks["frames"]["summary"]["zeroshot"]["forces"]["n"]
    )
    assert len(unit["curve"]) == unit["epochs_run"]
    assert set(tasks["epa"]["summary"]) == {"pretrained"}
    eos = tasks["eos"]["units"][0]
    assert len(eos["predictions"]) + len(eos["failures"]) + len(eos["out_of_domain"]) == 3
    assert tasks["frames"]["units"][0]["n_frames"] == 16
    assert tasks["frames"]["summary"]["zeroshot"]["forces"]["n"] > 0
    md = (eval_run / "report.md").read_text()
    assert "| dielectric |" in md and "Zero-shot energy, force and stress errors: frames" in md


def test_both_arms_share_one_recipe(eval_run):
    results = json.loads((eval_run / "results.json").read_text())
    units = next(t for t in results["tasks"] if t["name"] == "dielectric")["units"]
    by_variant = {u["variant"]: u for u in units}
    assert (
        by_variant["pretrained"]["frozen_tensors"] == by_variant["scratch"]["frozen_tensors"] == 1
    )
    assert by_variant["pretrained"]["backbone_lr"] == by_variant["scratch"]["backbone_lr"] == 0.0005
    assert (
        by_variant["pretrained"]["trainable_parameters"]
        == by_variant["scratch"]["trainable_parameters"]
    )
    assert by_variant["pretrained"]["copied_tensors"] > 0 == by_variant["scratch"]["copied_tensors"]


def test_rerun_resumes_and_reduce_only(eval_run):
    from foundation.evals.suite import plan_units, run_unit

    from foundation.jobs import run_items

    unit_file = next((eval_run / "units" / "dielectric").glob("*.json"))
    before = unit_file.stat().st_mtime_ns
    assert run_items(run_unit, plan_units(eval_run), workers=1)[1] == []
    assert unit_file.stat().st_mtime_ns == before  # finished units are not recomputed
    assert main(["eval", "--reduce-only", "--out", str(eval_run)]) == 0


def test_rerun_with_another_suite_is_refused(eval_run, tiny_run, tmp_path):
    suite = _suite(tmp_path)
    with pytest.raises(ValueError, match="different suite configuration"):
        main(
            [
                "eval",
                "--checkpoint",
                str(tiny_run),
                "--suite",
                str(suite),
                "--out",
                str(eval_run),
                "finetune.max_epochs=4",
            ]
        )
