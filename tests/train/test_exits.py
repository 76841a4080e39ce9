"""Training ends honestly: a non-finite loss stops the run naming the step and the frames (exit 2); SIGTERM stops
it with exit 75 and a summary naming only what exists; resuming with another data path is refused unless
--allow-config-change, and then every change is logged; a ShardError in a loader worker of a torchrun rank is one
line and exit 2."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from foundation.cli.main import main
from foundation.cli.train import STOPPED_EXIT
from foundation.data.manifest import encode_natoms
from foundation.data.writer import write_dataset
from foundation.train.config import load_train_config
from foundation.train.loop import NonFiniteLoss
from foundation.train.runner import run_training
from tests.train.helpers import element_references, real_frames, tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _config_file(tmp_path, dataset, run_dir, **sections):
    path = tmp_path / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(tiny_config(dataset, run_dir, **sections)))
    return path


def test_a_non_finite_loss_names_the_step_and_the_frames(tmp_path, capsys):
    frames = real_frames(8)
    bad = [dataclasses.replace(f, energy=1e308) for f in frames[:4]]
    dataset = tmp_path / "ds"
    write_dataset(
        dataset,
        {"train": bad, "val": frames[4:]},
        element_references=element_references(frames[4:]),
    )
    cfg = load_train_config(tiny_config(dataset, tmp_path / "run"))
    with pytest.raises(
        NonFiniteLoss, match=r"^step 1: the loss is (inf|nan) .*frames 'mptrj"
    ) as caught:
        run_training(cfg)
    assert all(repr(f.frame_id) in str(caught.value) for f in bad)  # one batch: all four frames
    assert main(["train", "--config", str(_config_file(tmp_path, dataset, tmp_path / "cli"))]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: step 1: the loss is")


def test_sigterm_exits_75_and_a_resume_with_other_data_is_refused_then_logged(
    train_data, tmp_path, capsys
):
    run = tmp_path / "run"
    config = _config_file(
        tmp_path, train_data, run, train={"max_steps": 200, "checkpoint_every": 1, "val_every": 100}
    )
    latest = run / "checkpoints" / "latest"

    def stop_after_first_checkpoint():
        while not latest.exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_after_first_checkpoint, daemon=True).start()
    assert main(["train", "--config", str(config)]) == STOPPED_EXIT
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["stopped"] and summary["best"] is None and not (run / "best").exists()
    assert summary["last"] == str(run / "last") and (run / "last").is_dir()
    assert f"stopped at step {summary['step']} on request (exit 75)" in err

    other = tmp_path / "other"
    shutil.copytree(train_data, other)
    saved = (run / "config.yaml").read_text()
    more = f"train.max_steps={summary['step'] + 1}"
    assert main(["train", "--resume", str(run), f"data.path={other}", more]) == 2
    err = capsys.readouterr().err
    assert f"error: {run}/config.yaml: resuming with another data path or model (data.path:" in err
    assert "--allow-config-change" in err and (run / "config.yaml").read_text() == saved

    args = ["train", "--resume", str(run), f"data.path={other}", more, "--allow-config-change"]
    assert main(args) == 0
    log = (run / "train.log").read_text()
    assert f"resume: config changed: data.path: '{train_data}' -> '{other}' (allowed by" in log
    assert f"resume: config changed: train.max_steps: 200 -> {summary['step'] + 1}" in log
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["path"] == str(other)


@pytest.mark.slow
def test_a_shard_error_in_a_loader_worker_under_torchrun_is_one_line_and_exit_2(
    train_data, tmp_path
):
    dataset = tmp_path / "ds"
    shutil.copytree(train_data, dataset)
    manifest = json.loads((dataset / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if shard["path"].startswith("wds/train"):
            shard.update(
                num_atoms=shard["num_frames"], natoms=encode_natoms([1] * shard["num_frames"])
            )
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    config = _config_file(
        tmp_path, dataset, tmp_path / "run", data={"container": "wds", "num_workers": 1}
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    command = [sys.executable, "-m", "foundation.cli.main", "train", "--config", str(config)]
    done = subprocess.run(
        [*command, "--launcher", "torchrun", "--nproc-per-node", "1"],
        env={**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Original Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2, done.stderr[-3000:]  # the rank's line and the launcher's
    assert re.search(
        rf"error: {dataset}/wds/train-\d+\.tar: record \d+ has \d+ atoms, the manifest says 1",
        errors[0],
    )
    assert errors[1].startswith("error: training under torchrun failed (1 of 1 ranks)")
