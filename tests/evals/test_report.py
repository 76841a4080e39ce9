"""The reducer and the report from synthetic unit results: results.json, report.md, a standalone report.html
whose figures all load in headless Chromium."""

import json

import pytest

from foundation.evals.reduce import reduce_units
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
    for line in md.splitlines():
        if line.startswith("!["):
            assert (synthetic_run / line.split("](")[1].rstrip(")")).is_file()


def test_missing_units_are_reported(tmp_path):
    run = make_synthetic_run(tmp_path / "eval", skip=1)
    results = json.loads(reduce_units(run)["results.json"].read_text())
    assert results["missing_units"] == ["frames/fold0_seed0_zeroshot"]
    assert "Incomplete" in (run / "report.md").read_text()


def test_report_html_figures_load_in_chromium(synthetic_run, tmp_path):
    html = reduce_units(synthetic_run)["report.html"]
    text = html.read_text()
    assert "src=\"http" not in text and "src=\"figures" not in text  # standalone
    loaded, total = figures_loaded_in_chromium(html, tmp_path)
    # comparison, parity + curves for the fine-tuning task, EOS parity, zero-shot errors
    assert total == 5
    assert loaded == total
