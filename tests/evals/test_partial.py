"""`foundation release` of an unfinished run or eval (evals/partial.py): refused without --allow-partial, and
marked in release.json and on the model card with it; a finished or early-stopped run is not marked."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from foundation.evals.partial import training_shortfall

from foundation.cli.main import main
from foundation.files import sha256_file
from foundation.report import REPORT_FILES, RESULTS_JSON


@pytest.fixture
def stopped_run(tiny_run, tmp_path):
    """The tiny run, planned for 40 steps, whose last/ export is at step 16 (a run stopped by SIGTERM)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"] = {"max_steps": 40}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    meta = json.loads((run / "last" / "model.json").read_text())
    (run / "last" / "model.json").write_text(json.dumps({**meta, "step": 16}))
    return run


def _report(directory, weights, missing):
    directory.mkdir()
    results = {
        "suite": {"name": "quick"},
        "checkpoint": {"sha256": sha256_file(weights)},
        "tasks": [],
        "missing_units": missing,
    }
    for name in REPORT_FILES:
        (directory / name).write_text("x")
    (directory / RESULTS_JSON).write_text(json.dumps(results))
    return directory


def test_a_stopped_run_is_refused_without_allow_partial_and_marked_with_it(
    stopped_run, tmp_path, capsys
):
    out = tmp_path / "release"
    assert main(["release", str(stopped_run), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"error: {stopped_run}: training stopped at step 16 of the 40 planned" in error
    assert "--allow-partial" in error and not out.exists()
    assert main(["release", str(stopped_run), "--out", str(out), "--allow-partial"]) == 0
    info = json.loads((out / "release.json").read_text())
    assert info["incomplete"] == ["training stopped at step 16 of the 40 planned (train.max_steps)"]
    assert "**Incomplete release**: training stopped at step 16" in (out / "README.md").read_text()


def test_a_report_missing_units_is_refused_and_marked(tiny_run, tmp_path, capsys):
    report = _report(
        tmp_path / "eval", tiny_run / "best" / "model.safetensors", ["bulk/f0_s0_pretrained"]
    )
    out = tmp_path / "release"
    command = ["release", str(tiny_run), "--out", str(out), "--report", str(report)]
    assert main(command) == 2
    assert "the eval report misses 1 units (bulk/f0_s0_pretrained)" in capsys.readouterr().err
    assert main([*command, "--allow-partial"]) == 0
    info = json.loads((out / "release.json").read_text())
    assert info["incomplete"] == ["the eval report misses 1 units (bulk/f0_s0_pretrained)"]
    assert info["evals"]["missing_units"] == ["bulk/f0_s0_pretrained"]


def test_a_finished_run_is_not_marked(stopped_run, tiny_run):
    assert training_shortfall(tiny_run, {"run_dir": "x"}) is None  # nothing planned recorded
    assert training_shortfall(stopped_run, {"train": {"max_steps": 16}}) is None
    assert "step 16 of the 40" in training_shortfall(stopped_run, {"train": {"max_steps": 40}})
