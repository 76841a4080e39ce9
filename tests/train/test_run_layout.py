"""The run-directory layout (foundation/train/run_layout.py): the names every reader of a run directory uses."""

from __future__ import annotations

import pytest

from foundation.train.run_layout import MODEL_WEIGHTS, RunLayout


def test_paths_of_a_run_directory(tmp_path):
    run = RunLayout(str(tmp_path))
    assert run.root == tmp_path
    assert [
        p.relative_to(tmp_path).as_posix()
        for p in (
            run.config,
            run.metrics_log,
            run.text_log,
            run.tensorboard,
            run.checkpoints,
            run.export("best"),
            run.export("last"),
        )
    ] == ["config.yaml", "metrics.jsonl", "train.log", "tb", "checkpoints", "best", "last"]
    with pytest.raises(ValueError, match="which must be one of"):
        run.export("final")


def test_a_run_directory_has_its_config_and_an_exported_model(tmp_path):
    run = RunLayout(tmp_path)
    assert not run.is_run()
    run.config.write_text("model: schnet\n")
    assert not run.is_run()  # started, nothing exported yet
    run.export("last").mkdir()
    (run.export("last") / MODEL_WEIGHTS).write_bytes(b"")
    assert run.is_run()
