"""A whole run in this process (world of one): run directory layout, TensorBoard/metrics/log contents, atomic
checkpoints keeping the last K, best/last exports that load back, a denoising run on WebDataset shards, a stop
request by SIGUSR2."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch

from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.models.loading import load_potential
from foundation.train.checkpoint import latest_checkpoint
from foundation.train.config import load_train_config
from foundation.train.runner import run_training
from tests.train.helpers import tiny_config


@pytest.fixture(scope="module")
def efs_run(train_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("efs") / "run"
    cfg = load_train_config(
        tiny_config(
            train_data,
            run_dir,
            train={"max_steps": 6, "checkpoint_every": 2, "keep_checkpoints": 2, "val_every": 3},
        )
    )
    return run_dir, run_training(cfg)


def test_run_directory_layout(efs_run):
    run_dir, summary = efs_run
    assert summary["step"] == 6 and summary["stopped"] is False
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["latest", "step-00000004", "step-00000006"]  # the last K=2, no temporary left
    assert (
        latest_checkpoint(run_dir).name == "step-00000006" == summary["checkpoint"].split("/")[-1]
    )
    step = run_dir / "checkpoints" / "step-00000006"
    assert {"state.json", "ema.safetensors", "rng-rank0.safetensors", "deepspeed"} <= {
        p.name for p in step.iterdir()
    }
    state = json.loads((step / "state.json").read_text())
    assert (
        state["step"] == 6
        and state["world_size"] == 1
        and "element_references" in state["normalization"]
    )
    saved = load_train_config(run_dir / "config.yaml")
    assert saved.run_dir == str(run_dir) and saved.train.max_steps == 6
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))


def test_metrics_log_every_term_and_the_watch_figures(efs_run):
    run_dir, summary = efs_run
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in events if e["kind"] == "train"]
    val = [e for e in events if e["kind"] == "val"]
    assert [e["step"] for e in train] == [2, 4, 6] and [e["step"] for e in val] == [3, 6]
    for key in (
        "energy_loss",
        "forces_loss",
        "stress_loss",
        "energy_mae",
        "forces_mae",
        "stress_mae",
        "loss",
        "lr",
        "grad_norm",
        "atoms_per_s",
        "data_wait_fraction",
        "memory/host_peak_mb",
    ):
        assert key in train[-1] and train[-1][key] is not None, key
    assert 0 <= train[-1]["data_wait_fraction"] <= 1 and train[-1]["grad_norm"] > 0
    assert train[-1]["lr"] < train[0]["lr"]  # cosine decay
    assert val[-1]["loss"] == pytest.approx(summary["val"]["loss"])
    log = (run_dir / "train.log").read_text()
    assert "val step 6" in log and "checkpoint" in log


def test_exports_load_back_and_reproduce_the_validation_errors(efs_run, train_data):
    run_dir, summary = efs_run
    potential = load_potential(run_dir, "last")
    frames = list(open_dataset(train_data, "val", "lmdb"))
    batch = collate_frames(frames, potential.cutoff)
    out = potential(batch)
    forces_mae = float((out["forces"] - batch.forces).abs().mean())
    energy_mae = float(((out["energy"] - batch.energy) / batch.natoms).abs().mean())
    assert forces_mae == pytest.approx(summary["val"]["forces_mae"], rel=1e-4)
    assert energy_mae == pytest.approx(summary["val"]["energy_mae"], rel=1e-4)
    # the trivial baseline beside it: zero forces, the element references (and shift) alone for energies
    assert float(batch.forces.abs().mean()) == pytest.approx(
        summary["val"]["forces_baseline_mae"], rel=1e-4
    )
    head = potential.energy_head
    reference = torch.zeros(len(frames), dtype=torch.float64).index_add_(
        0, batch.batch, head.element_references[batch.numbers] + head.shift
    )
    assert float(((reference - batch.energy) / batch.natoms).abs().mean()) == pytest.approx(
        summary["val"]["energy_baseline_mae"], rel=1e-4, abs=1e-5
    )
    check = summary["baseline_check"]
    assert check["available"] and set(check["terms"]) >= {"energy", "forces"}
    assert check["flagged"] == any(
        t["ratio"] is None or t["ratio"] > 0.8 for t in check["terms"].values()
    )
    best = json.loads((run_dir / "best" / "model.json").read_text())
    assert best["step"] == summary["best_step"] and best["model"]["backbone"]["name"] == "schnet"
    assert load_potential(run_dir, "best").energy_head.element_references.abs().sum() > 0


def test_denoising_on_webdataset_and_stop_request(train_data, tmp_path):
    """Derivative denoising plus E/F on streamed shards; SIGUSR2 after the first checkpoint stops the run at a
    step boundary with a checkpoint of that step."""
    model = {**tiny_config(train_data, tmp_path)["model"]}
    model["heads"] = {**model["heads"], "denoise": "derivative", "stress": "none"}
    cfg = load_train_config(
        tiny_config(
            train_data,
            tmp_path / "run",
            model=model,
            data={"container": "wds", "num_workers": 1},
            objective={"stress_weight": 0.0, "denoise_weight": 1.0},
            train={"max_steps": 200, "checkpoint_every": 2, "val_every": 100},
        )
    )
    latest = tmp_path / "run" / "checkpoints" / "latest"

    def stop_after_first_checkpoint():
        while not latest.exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR2)

    threading.Thread(target=stop_after_first_checkpoint, daemon=True).start()
    summary = run_training(cfg)
    assert summary["stopped"] is True and 2 <= summary["step"] < 200
    assert latest_checkpoint(tmp_path / "run").name == f"step-{summary['step']:08d}"
    events = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert (
        "denoise_loss" in events[0] and "forces_loss" in events[0] and events[0]["denoise_mae"] > 0
    )
    assert signal.getsignal(signal.SIGUSR2) is not None  # handlers restored
