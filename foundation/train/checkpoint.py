"""Checkpoints and model exports of a run directory (its layout: foundation/train/run_layout.py).

A checkpoint, run_dir/checkpoints/step-00000100/, holds deepspeed/ (DeepSpeed's own checkpoint, tag "deepspeed"),
state.json (step, epoch, sampler position, schedule, EMA count, normalisers, ...), ema.safetensors (EMA weights) and
rng-rank{R}.safetensors (every rank's RNG); run_dir/best/ and last/ hold model.safetensors (EMA fp32 weights,
consolidated) + model.json (model config, normalisers, step, validation metrics).
A checkpoint is written into checkpoints/.tmp-step-N, renamed into place once complete, and only then named by
`latest`; the last `keep` are kept. Our files are JSON and safetensors (no pickle); DeepSpeed's own .pt files are
read back with the weights-only unpickler and an allow-list (foundation.train.weights_only), so resuming a shared
run directory never runs code from it. An export is loaded back by foundation/models/loading.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from foundation.config import ConfigError
from foundation.errors import writing
from foundation.files import write_text_atomic
from foundation.train.distributed import barrier
from foundation.train.run_layout import (
    CHECKPOINT_STATE,
    CHECKPOINTS,
    LATEST,
    MODEL_META,
    MODEL_WEIGHTS,
)

DS_TAG = "deepspeed"
EMA_FILE = "ema.safetensors"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def _rng_file(rank: int) -> str:
    return f"rng-rank{rank}.safetensors"


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state().cpu()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"])


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    engine: Any,
    state: dict,
    ema: dict[str, torch.Tensor],
    *,
    rank: int,
    keep: int,
) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint directory."""
    root = Path(run_dir) / CHECKPOINTS
    final, tmp = root / step_dir_name(step), root / f".tmp-{step_dir_name(step)}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier()
    with writing(
        tmp
    ):  # a full disk: torch.save's "iostream error" becomes DiskFull naming device and directory
        engine.save_checkpoint(str(tmp), tag=DS_TAG, save_latest=False)
        save_file(rng_state(), str(tmp / _rng_file(rank)))
        if rank == 0:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / EMA_FILE)
            )
            write_text_atomic(
                tmp / CHECKPOINT_STATE, json.dumps(state, indent=1, sort_keys=True) + "\n"
            )
    barrier()
    if rank == 0:
        if final.exists():  # a rerun of the same step (e.g. the end of a resumed run): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text_atomic(root / LATEST, final.name + "\n")
        _prune(root, keep)
    barrier()
    return final


def _prune(root: Path, keep: int) -> None:
    steps = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):  # left by a run killed while writing
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run: the one `latest` names, else the newest step-* with a state."""
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    if pointer.exists():
        named = root / pointer.read_text().strip()
        if (named / CHECKPOINT_STATE).exists():
            return named
    complete = sorted(
        p
        for p in root.glob("step-*")
        if _STEP_DIR.match(p.name) and (p / CHECKPOINT_STATE).exists()
    )
    return complete[-1] if complete else None


def load_checkpoint(
    path: Path, engine: Any, *, rank: int, world_size: int
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Collective: restore DeepSpeed's state into `engine` and this rank's RNG; return (state, EMA tensors).
    DeepSpeed's .pt files are read with the weights-only unpickler (`weights_only`): a crafted file is refused
    with an error naming it, and nothing in it runs."""
    from foundation.train.weights_only import (
        use_weights_only_loading,  # imports DeepSpeed (heavy, optional)
    )

    state = json.loads((path / CHECKPOINT_STATE).read_text())
    if state["world_size"] != world_size:
        raise ValueError(
            f"{path}: written by {state['world_size']} ranks, this run has {world_size}; exact resume "
            "needs the same world size (the sampler plan depends on it)"
        )
    use_weights_only_loading(engine)
    try:
        load_path, _ = engine.load_checkpoint(
            str(path),
            tag=DS_TAG,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
            load_module_strict=True,
        )
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        raise ConfigError(
            f"{path}: the checkpoint's weights do not fit the model this config builds (a preset "
            "changed since the run started? configs/model/scalable-* set backbone.norm: layer; resume a "
            "run started without it with backbone.norm=none added to its model_overrides): "
            f"{' '.join(str(exc).split())[:400]}"
        ) from None
    if load_path is None:
        raise RuntimeError(f"{path}: DeepSpeed found no checkpoint under tag {DS_TAG!r}")
    set_rng_state(load_file(str(path / _rng_file(rank))))
    return state, load_file(str(path / EMA_FILE))


def export_model(
    directory: str | os.PathLike, weights: dict[str, torch.Tensor], meta: dict
) -> Path:
    """Write model.safetensors + model.json into `directory` (replaced atomically as a whole)."""
    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with writing(tmp):
        save_file(weights, str(tmp / MODEL_WEIGHTS))
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    old = directory.with_name(f".old-{directory.name}")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory
