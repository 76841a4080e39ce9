"""The objective ablation end to end at toy size on real frames and the real dielectric task (samples in
tests/fixtures), and its claim checks."""

import json
import shutil

import pytest
import yaml
from foundation.studies.ablation import PROBE, SCRATCH, ablation_rows, check_claims

from foundation.cli.main import main
from tests.conftest import FIXTURES


def _units(maes: dict[str, float], jitter: float) -> list[dict]:
    """Units of 3 folds x 3 seeds per row: the row's MAE plus a per-(fold, seed) shift every row shares (what
    pairing removes) and, for efs_derivative, an alternating `jitter`."""
    units = []
    for fold, seed in [(f, s) for f in range(3) for s in range(3)]:
        shared = 0.1 * fold + 0.01 * seed
        for name, mae in maes.items():
            sign = (-1) ** (3 * fold + seed) if name == "efs_derivative" else 0
            units.append(
                {
                    "variant": name,
                    "fold": fold,
                    "seed": seed,
                    "size": 300,
                    "metrics": {"mae": mae + shared + sign * jitter},
                }
            )
    return units


def test_claims_are_paired_comparisons_with_intervals():
    maes = {
        SCRATCH: 0.5,
        "denoise_direct": 0.45,
        "denoise_derivative": 0.4,
        "e": 0.42,
        "efs_direct": 0.38,
        "efs_derivative": 0.3,
    }
    units = _units(maes, jitter=0.0)
    rows = ablation_rows(units, [n for n in maes if n != SCRATCH], 300)
    claims = check_claims(units, rows, 300)
    assert [c["agrees"] for c in claims] == [True, True, True, True], claims
    assert all(c["pairs"] == 9 and c["ci95"][1] < 0 for c in claims)
    assert rows["efs_derivative"]["vs_scratch"]["verdict"] == "helps"
    assert rows["efs_derivative"]["mae"] == pytest.approx(
        0.3 + 0.1 + 0.01
    )  # the shared shifts average 0.11

    maes["efs_derivative"] = (
        0.6  # now worse than every other objective and than scratch: two claims fail
    )
    units = _units(maes, jitter=0.0)
    claims = check_claims(units, ablation_rows(units, [n for n in maes if n != SCRATCH], 300), 300)
    assert [c["agrees"] for c in claims] == [True, True, False, False]
    assert "against efs_direct" in claims[3]["claim"]

    maes["efs_derivative"] = (
        0.37  # 0.01 better than efs_direct on average, but +-0.05 per pair: not resolved
    )
    units = _units(maes, jitter=0.05)
    claims = check_claims(units, ablation_rows(units, [n for n in maes if n != SCRATCH], 300), 300)
    assert claims[2]["agrees"] is None and claims[2]["ci95"][0] < 0 < claims[2]["ci95"][1]

    scratch_only = _units({SCRATCH: 1.0}, jitter=0.0)
    assert all(
        c["agrees"] is None and c["pairs"] == 0
        for c in check_claims(scratch_only, ablation_rows(scratch_only, [], 300), 300)
    )


def test_tiny_ablation_writes_one_report(tmp_path):
    config = yaml.safe_load(open("configs/experiments/paper_ablation.yaml"))
    config.update(
        out_dir=str(tmp_path / "ablation"),
        data_root=str(FIXTURES),
        inputs=["dft/mpf-alkali-TP-sample.xyz"],
        steps=4,
        eval_workers=1,
    )
    config["train_overrides"] = [
        "data.max_atoms=128",
        "data.val_max_frames=16",
        "train.val_every=4",
        "train.checkpoint_every=4",
        "schedule.warmup_steps=1",
        "train.progress=false",
        "data.num_workers=0",
        "engine.zero_stage=0",
    ]
    config["prep"] = {
        "container": "lmdb",
        "split": {"train": 0.8, "val": 0.2, "test": 0.0},
        "progress": False,
    }
    config["objectives"] = [
        o for o in config["objectives"] if o["name"] in ("denoise_derivative", "efs_derivative")
    ]
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
    assert task["baseline_ratios"] == pytest.approx(
        {n: r["mae"] / base for n, r in task["rows"].items()}
    )
    for name in (
        "denoise_derivative",
        "efs_derivative",
    ):  # paired with scratch and with the random-feature probe
        row = task["rows"][name]
        assert (
            row["vs_scratch"]["pairs"] == seeds
            and row["vs_scratch"]["verdict"] == "no detectable effect"
        )
        assert row["probe"]["count"] == seeds and row["probe"]["vs_random"]["pairs"] == seeds
    assert {u["variant"] for u in task["units"]} >= {
        PROBE + "efs_derivative",
        PROBE + "random",
        SCRATCH,
    }
    assert results["missing"] == []
    html = (tmp_path / "ablation" / "report.html").read_text()
    assert "data:image/png;base64," in html and "finding" in html and "efs_derivative" in html
    assert "mean predictor (baseline)" in html

    # an objective whose evaluation is missing is named, and the others are still reported
    shutil.rmtree(tmp_path / "ablation" / "eval" / "efs_derivative")
    assert main(["ablation", "--config", str(path), "--only-report"]) == 0
    results = json.loads((tmp_path / "ablation" / "results.json").read_text())
    assert results["missing"] == ["efs_derivative"]
    assert set(results["tasks"]["matbench_dielectric"]["ranking"]) == {
        "denoise_derivative",
        SCRATCH,
    }
    report = (tmp_path / "ablation" / "report.md").read_text()
    assert "Missing (not pre-trained or not evaluated): efs_derivative" in report
