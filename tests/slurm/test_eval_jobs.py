"""An eval run as a Slurm array (one task per unit) plus a reducer job: one report from all units."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import FIXTURES

pytestmark = pytest.mark.slurm


def test_eval_array_and_reducer_write_one_report(trained_run, slurm_cluster, slurm_workdir):
    _, run_dir = trained_run
    suite = slurm_workdir / "eval-suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "slurm-tiny",
                "data_root": str(FIXTURES),
                "seeds": [0],  # no task reads a data file
                "finetune": {"max_epochs": 2, "patience": 2, "batch_size": 8},
                "tasks": [
                    {
                        "name": "bulk",
                        "kind": "dcdft_finetune",
                        "num_folds": 4,
                        "folds": [0],
                        "scratch": False,
                    },
                    {"name": "eos", "kind": "dcdft_eos", "elements": ["Cu", "Al"]},
                    {"name": "frames", "kind": "zeroshot", "split": "val"},
                ],
            }
        )
    )
    out = slurm_workdir / "eval"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "foundation.cli.main",
            "eval",
            "--checkpoint",
            str(run_dir),
            "--suite",
            str(suite),
            "--out",
            str(out),
            "--launcher",
            "slurm",
            "--cluster",
            "local",
            "--wait",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["missing_units"] == []
    assert {t["name"] for t in results["tasks"]} == {"bulk", "eos", "frames"}
    assert sum(len(t["units"]) for t in results["tasks"]) == 3
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    unit_logs = list((out / "slurm").glob("*_*_0_log.out"))  # array tasks: ARRAYID_INDEX_RANK
    assert len(unit_logs) == 3
