"""Resuming never unpickles arbitrary objects: DeepSpeed's .pt files are read with the weights-only unpickler.

Every ZeRO stage and precision round-trips exactly through that loader (the next step after a load equals the
next step of the engine that saved), and a crafted `mp_rank_00_model_states.pt` or ZeRO optimizer file whose
pickle would run a shell command is refused naming the file, with the command never run (the same file does run
it under torch.load(weights_only=False), so the test would fail if the refusal stopped happening)."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler

from foundation.config import ConfigError
from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.models import build_potential
from foundation.train import checkpoint as ckpt
from foundation.train.config import load_train_config
from foundation.train.engine import build_engine
from foundation.train.objectives import Objective
from foundation.train.runner import run_training
from foundation.train.weights_only import UnsafeCheckpointError, load_weights_only
from tests.train.helpers import TINY_MODEL, tiny_config

CACHE = Path(__file__).resolve().parents[2] / ".cache"


class RunsCommand:
    """Unpickling this runs `touch MARKER` (what an attacker's checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _write_payload(path: Path, marker: Path, fmt: str) -> None:
    path.unlink()
    if fmt == "torch-zip":
        torch.save({"module": RunsCommand(marker)}, path)
    else:  # a bare pickle, as torch's legacy format starts
        path.write_bytes(pickle.dumps(RunsCommand(marker), protocol=2))


def _assert_refused_and_would_run(exc: pytest.ExceptionInfo, path: Path, marker: Path) -> None:
    assert str(path) in str(exc.value) and "posix.system" in str(exc.value)
    assert not marker.exists(), "the crafted checkpoint ran its command"
    with contextlib.suppress(
        Exception
    ):  # proof that the file is a working exploit: the unsafe load runs it
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.fixture(scope="module")
def batches(train_data):
    frames = open_dataset(train_data, "train", "lmdb")
    return [collate_frames([frames[i] for i in range(k, k + 4)], 4.0) for k in (0, 4)]


def _engine(train_data, tmp_path, group, seed: int, **engine):
    cfg = load_train_config(tiny_config(train_data, tmp_path, engine=engine))
    torch.manual_seed(seed)
    return build_engine(
        build_potential(TINY_MODEL).train(), cfg, 1, group.device, CACHE
    ), Objective(cfg.objective)


def _step(engine, objective, batch) -> dict[str, torch.Tensor]:
    out = engine(batch, compute=("energy", "forces", "stress"))
    loss, _ = objective.loss(objective.errors(out, batch), objective.counts(batch, None))
    engine.backward(loss)
    engine.step()
    return {k: v.detach().float().clone() for k, v in engine.module.named_parameters()}


def _saved_checkpoint(train_data, tmp_path, group, batches, **engine):
    """An engine after one step, saved with ckpt.save_checkpoint; returns (engine, objective, checkpoint dir)."""
    saver, objective = _engine(train_data, tmp_path, group, 0, **engine)
    _step(saver, objective, batches[0])
    path = ckpt.save_checkpoint(
        tmp_path / "run", 1, saver, {"step": 1, "world_size": 1}, {}, rank=0, keep=2
    )
    return saver, objective, path


@pytest.mark.parametrize(
    "stage, precision", [(0, "fp32"), (1, "fp32"), (2, "fp32"), (0, "bf16"), (2, "bf16")]
)
def test_every_stage_and_precision_resumes_exactly_through_the_weights_only_loader(
    train_data, tmp_path, group, batches, stage, precision
):
    saver, objective, path = _saved_checkpoint(
        train_data, tmp_path, group, batches, zero_stage=stage, precision=precision
    )
    loader, _ = _engine(
        train_data, tmp_path, group, 1, zero_stage=stage, precision=precision
    )  # other weights
    state, _ = ckpt.load_checkpoint(path, loader, rank=0, world_size=1)
    assert (
        state["step"] == 1
        and type(loader.checkpoint_engine).__name__ == "WeightsOnlyCheckpointEngine"
    )
    expected, resumed = _step(saver, objective, batches[1]), _step(loader, objective, batches[1])
    for (
        name,
        value,
    ) in expected.items():  # the optimizer moments came back too: the next step is identical
        assert torch.equal(resumed[name], value), name


def test_the_fp16_dynamic_loss_scaler_loads_through_the_allow_list(tmp_path):
    """fp16 engines (GPU only, not testable here) keep a DynamicLossScaler in their optimizer state."""
    scaler = DynamicLossScaler(
        init_scale=2**16,
        scale_window=1000,
        min_scale=1,
        delayed_shift=2,
        consecutive_hysteresis=False,
        raise_error_at_min_scale=True,
        dtype=torch.float16,
    )
    torch.save({"loss_scaler": scaler, "dynamic_loss_scale": True}, tmp_path / "optim.pt")
    loaded = load_weights_only(tmp_path / "optim.pt")["loss_scaler"]
    assert type(loaded) is DynamicLossScaler and vars(loaded) == vars(scaler)


@pytest.mark.parametrize("fmt", ["torch-zip", "bare-pickle"])
def test_a_crafted_zero_optimizer_file_is_refused_and_runs_nothing(
    train_data, tmp_path, group, batches, fmt
):
    _, _, path = _saved_checkpoint(train_data, tmp_path, group, batches, zero_stage=2)
    target = path / ckpt.DS_TAG / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    marker = tmp_path / "pwned"
    _write_payload(target, marker, fmt)
    loader, _ = _engine(train_data, tmp_path, group, 1, zero_stage=2)
    with pytest.raises(UnsafeCheckpointError) as exc:
        ckpt.load_checkpoint(path, loader, rank=0, world_size=1)
    _assert_refused_and_would_run(exc, target, marker)


@pytest.fixture(scope="module")
def finished_run(train_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    config = tiny_config(
        train_data, run_dir, train={"max_steps": 2, "checkpoint_every": 2, "val_every": 2}
    )
    run_training(load_train_config(config))
    return run_dir, config


@pytest.mark.parametrize("fmt", ["torch-zip", "bare-pickle"])
def test_resuming_a_run_with_a_crafted_model_states_file_runs_nothing_and_names_it(
    finished_run, tmp_path, fmt
):
    source, config = finished_run
    run_dir = tmp_path / "shared-run"
    shutil.copytree(source, run_dir)
    target = ckpt.latest_checkpoint(run_dir) / ckpt.DS_TAG / "mp_rank_00_model_states.pt"
    marker = tmp_path / "pwned"
    _write_payload(target, marker, fmt)
    resume = load_train_config(
        {**config, "run_dir": str(run_dir), "train": {**config["train"], "max_steps": 4}}
    )
    with pytest.raises(UnsafeCheckpointError) as exc:
        run_training(resume)
    _assert_refused_and_would_run(exc, target, marker)


def test_a_truncated_checkpoint_file_is_named(finished_run, tmp_path):
    source, config = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(source, run_dir)
    target = ckpt.latest_checkpoint(run_dir) / ckpt.DS_TAG / "mp_rank_00_model_states.pt"
    target.write_bytes(target.read_bytes()[:1000])
    resume = load_train_config(
        {**config, "run_dir": str(run_dir), "train": {**config["train"], "max_steps": 4}}
    )
    with pytest.raises(UnsafeCheckpointError, match=f"{target}: unreadable checkpoint file"):
        run_training(resume)


def test_a_checkpoint_whose_weights_do_not_fit_the_model_is_named_with_the_fix(
    train_data, tmp_path, group, batches
):
    """A run started before a preset gained a layer (backbone.norm) resumes into a model with more weights: the
    error names the checkpoint and the override, instead of DeepSpeed's bare state_dict error."""
    cfg = load_train_config(tiny_config(train_data, tmp_path))
    painn = {
        **TINY_MODEL,
        "backbone": {"name": "painn", "hidden": 8, "layers": 2, "cutoff": 4.0, "num_radial": 8},
    }
    engines = {
        norm: build_engine(
            build_potential({**painn, "backbone": {**painn["backbone"], "norm": norm}}).train(),
            cfg,
            1,
            group.device,
            CACHE,
        )
        for norm in ("none", "layer")
    }
    _step(engines["none"], Objective(cfg.objective), batches[0])
    path = ckpt.save_checkpoint(
        tmp_path / "run", 1, engines["none"], {"step": 1, "world_size": 1}, {}, rank=0, keep=2
    )
    with pytest.raises(ConfigError, match="backbone.norm=none added to its model_overrides") as exc:
        ckpt.load_checkpoint(path, engines["layer"], rank=0, world_size=1)
    assert str(path) in str(exc.value) and "norm.scalars.weight" in str(exc.value)
