"""The objective ablation end to end at toy size on real frames and the real dielectric task (samples in
tests/fixtures), and its claim checks."""

import json

import pytest
import yaml

from foundation.studies.ablation import SCRATCH, check_claims
from foundation.cli.main import main
from tests.conftest import FIXTURES


def test_claims_compare_mean_maes():
    rows = {name: {"mae": mae} for name, mae in [(SCRATCH, 0.5), ("denoise_direct", 0.45), ("denoise_derivative", 0.4),
                                                  ("e", 0.42), ("efs_direct", 0.38), ("efs_derivative", 0.3)]}
    claims = {c["claim"].split(" (")[0]: c["agrees"] for c in check_claims(rows)}
    assert all(claims.values()), claims
    rows["efs_derivative"]["mae"] = 0.6
    verdicts = check_claims(rows)
    assert [c["agrees"] for c in verdicts] == [True, True, False, False]
    assert check_claims({SCRATCH: {"mae": 1.0}})[0]["agrees"] is None


def test_tiny_ablation_writes_one_report(tmp_path):
    config = yaml.safe_load(open("configs/experiments/paper_ablation.yaml"))
    config.update(out_dir=str(tmp_path / "ablation"), data_root=str(FIXTURES), inputs=["dft/mpf-alkali-TP-sample.xyz"],
                  steps=4, eval_workers=1)
    config["train_overrides"] = ["data.max_atoms=128", "data.val_max_frames=16", "train.val_every=4",
                                 "train.checkpoint_every=4", "schedule.warmup_steps=1", "train.progress=false",
                                 "data.num_workers=0", "engine.zero_stage=0"]
    config["prep"] = {"container": "lmdb", "split": {"train": 0.8, "val": 0.2, "test": 0.0}, "progress": False}
    config["objectives"] = [o for o in config["objectives"] if o["name"] in ("denoise_derivative", "efs_derivative")]
    config["suite"]["data_root"] = str(FIXTURES)
    config["suite"]["finetune"].update(max_epochs=1, patience=1, batch_size=8)
    config["suite"]["tasks"][0].update(folds=[0], max_structures=24)
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["ablation", "--config", str(path), "--workers", "1"]) == 0
    results = json.loads((tmp_path / "ablation" / "results.json").read_text())
    task = results["tasks"]["matbench_dielectric"]
    assert set(task["ranking"]) == {"denoise_derivative", "efs_derivative", SCRATCH}
    seeds = len(config["suite"]["seeds"])  # one fold, every seed of the suite
    assert all(row["count"] == seeds and row["mae"] > 0 for row in task["rows"].values())
    base = task["baselines"]["mean"]["mae"]
    assert base > 0 and set(task["baselines"]) == {"mean", "median"}
    assert task["baseline_ratios"] == pytest.approx({n: r["mae"] / base for n, r in task["rows"].items()})
    html = (tmp_path / "ablation" / "report.html").read_text()
    assert "data:image/png;base64," in html and "finding" in html and "efs_derivative" in html
    assert "mean predictor (baseline)" in html
