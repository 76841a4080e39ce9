"""The reducer and the report from synthetic unit results: results.json, report.md, a standalone report.html
whose figures all load in headless Chromium."""

import json

import pytest
from foundation.evals.reduce import reduce_units

from foundation.cli.main import main
from tests.evals.conftest import figures_loaded_in_chromium, make_synthetic_run


def test_reduce_aggregates_over_folds_and_seeds(synthetic_run):
    paths = reduce_units(synthetic_run)
    results = json.loads(paths["results.json"].read_text())
    assert results["format"] == "foundation-eval" and results["missing_units"] == []
    assert results["checkpoint"]["sha256"] == "cd" * 32
    assert results["checkpoint"]["pretraining_manifest"]["sha256"] == "ef" * 32
    bulk = next(t for t in results["tasks"] if t["name"] == "bulk")
    assert len(bulk["units"]) == 2 * 2 * 2  # folds x seeds x variants
    pre = [u["metrics"]["mae"] for u in bulk["units"] if u["variant"] == "pretrained"]
    assert bulk["summary"]["pretrained"]["mae"]["mean"] == pytest.approx(sum(pre) / 4)
    assert bulk["summary"]["pretrained"]["mae"]["count"] == 4
    assert set(bulk["per_fold"]["scratch"]) == {"0", "1"}
    assert bulk["per_fold"]["scratch"]["1"]["mae"]["count"] == 2  # seeds
    md = paths["report.md"].read_text()
    assert "| bulk |" in md and "Zero-shot bulk moduli" in md and "no_minimum" in md
    assert (
        "| MPtrj | 40 | 0.02 | 0.5 | 0.04 | 0.1 | 0.4 | 0.25 |" in md
    )  # per source, beside the baselines
    for line in md.splitlines():
        if line.startswith("!["):
            assert (synthetic_run / line.split("](")[1].rstrip(")")).is_file()


def test_missing_units_are_reported(tmp_path):
    run = make_synthetic_run(tmp_path / "eval", skip=1)
    results = json.loads(reduce_units(run)["results.json"].read_text())
    assert results["missing_units"] == ["frames/fold0_seed0_zeroshot"]
    assert "Incomplete" in (run / "report.md").read_text()


def test_a_finetuning_task_with_no_finished_unit_still_gives_a_report(tmp_path):
    run = make_synthetic_run(tmp_path / "eval")
    removed = sorted(p for p in (run / "units").rglob("*.json") if "bulk" in p.parts)
    assert removed
    for path in removed:
        path.unlink()
    assert main(["eval", "--reduce-only", "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    bulk = next(t for t in results["tasks"] if t["name"] == "bulk")
    assert bulk["units"] == [] and bulk["summary"] == {}
    assert len(results["missing_units"]) == len(removed)
    assert all(key.startswith("bulk/") for key in results["missing_units"])
    assert f"{len(removed)} units have no result" in (run / "report.md").read_text()


def test_report_html_figures_load_in_chromium(synthetic_run, tmp_path):
    html = reduce_units(synthetic_run)["report.html"]
    text = html.read_text()
    assert 'src="http' not in text and 'src="figures' not in text  # standalone
    loaded, total = figures_loaded_in_chromium(html, tmp_path)
    # comparison, parity + curves for the fine-tuning task, EOS parity, zero-shot errors
    assert total == 5
    assert loaded == total


LEARNING_CURVE_SUITE = {
    "name": "curve",
    "seeds": [0, 1, 2],
    "tasks": [
        {
            "name": "bulk",
            "kind": "dcdft_finetune",
            "num_folds": 2,
            "train_sizes": [10, 30, "all"],
            "probe": True,
        }
    ],
}


def test_learning_curve_with_baselines_and_paired_verdicts(tmp_path):
    run = make_synthetic_run(tmp_path / "eval", suite=LEARNING_CURVE_SUITE)
    paths = reduce_units(run)
    results = json.loads(paths["results.json"].read_text())
    bulk = results["tasks"][0]
    assert len(bulk["units"]) == 3 * 2 * 3 * 4  # sizes x folds x seeds x arms
    assert list(bulk["by_size"]) == ["10", "30", "all"] and bulk["headline_size"] is None
    assert bulk["summary"]["pretrained"]["mae"]["count"] == 6  # headline size only: folds x seeds
    assert set(bulk["baselines"]["10"]) == {"mean", "median"}
    ratio = bulk["baseline_ratios"]["all"]["pretrained"]
    assert ratio == pytest.approx(
        bulk["by_size"]["all"]["pretrained"]["mae"]["mean"]
        / bulk["baselines"]["all"]["mean"]["mae"]["mean"]
    )
    rows = {(c["treatment"], c["size"]): c for c in bulk["comparisons"]}
    assert set(rows) == {(t, s) for t in ("pretrained", "probe_pretrained") for s in (10, 30, None)}
    row = rows["pretrained", 10]
    pre = {
        (u["fold"], u["seed"]): u["metrics"]["mae"]
        for u in bulk["units"]
        if u["size"] == 10 and u["variant"] == "pretrained"
    }
    scr = {
        (u["fold"], u["seed"]): u["metrics"]["mae"]
        for u in bulk["units"]
        if u["size"] == 10 and u["variant"] == "scratch"
    }
    assert row["pairs"] == 6
    assert row["mean_difference"] == pytest.approx(sum(pre[k] - scr[k] for k in pre) / 6)
    assert row["ci95"][0] <= row["mean_difference"] <= row["ci95"][1]
    assert row["verdict"] == "helps"  # the synthetic pre-trained arm has a quarter of the noise
    md = paths["report.md"].read_text()
    assert "MAE mean predictor" in md and "**helps**" in md and "figures/bulk_sizes.png" in md
    assert (run / "figures" / "bulk_sizes.png").stat().st_size > 1000


def test_report_accepts_curves_with_none(tmp_path):
    """A unit that stopped early or diverged has None in its validation curve (nan written as null): the report
    is still written, and re-reducing the finished units is a command of its own."""
    run = make_synthetic_run(tmp_path / "eval")
    unit_file = next((run / "units" / "bulk").glob("*_scratch.json"))
    body = json.loads(unit_file.read_text())
    body["curve"][3]["val_mae"] = None
    body["curve"].append({"epoch": 9, "train_loss": None, "val_mae": None, "lr": 1e-3})
    body["predictions"]["y_pred"][0] = None
    unit_file.write_text(json.dumps(body))
    from foundation.cli.main import main

    assert main(["eval", "--reduce-only", "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["missing_units"] == [] and (run / "figures" / "bulk_curves.png").is_file()


def test_pretraining_check_shows_the_fit_check_beside_validation(tmp_path):
    """A checkpoint whose validation record has the fit check (fit/...): the report's pre-training table gives the
    training-frame error beside the validation error and the baseline."""
    run = make_synthetic_run(tmp_path / "eval")
    record = json.loads((run / "checkpoint.json").read_text())
    record["validation"] = {
        "energy_mae": 0.46,
        "energy_baseline_mae": 0.73,
        "fit/energy_mae": 0.44,
        "forces_mae": 0.27,
        "forces_baseline_mae": 0.57,
    }
    (run / "checkpoint.json").write_text(json.dumps(record))
    reduce_units(run)
    report = (run / "report.md").read_text()
    assert (
        "model MAE on training frames (fit check)" in report
        and "| energy | 0.46 | 0.73 | 0.63 | 0.44 |" in report
    )
    assert "| forces | 0.27 | 0.57 | 0.474 | - |" in report and "underfits" in report
