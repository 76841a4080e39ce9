"""The DeepSpeed engine: ZeRO 0/1/2, fp32/bf16/fp16, gradient accumulation, explicit clipping, torch AdamW.

Facts this module relies on (DESIGN.md): forces/stress are computed inside module.forward, which is what
lets ZeRO 0-2 train them; ZeRO-3 is refused in the config. The optimizer is torch's AdamW handed to
DeepSpeed (DeepSpeed's own "AdamW" would JIT-compile fused_adam on CPU: minutes), and the shared-memory
all-reduce op (inference only) is switched off, so initialize() compiles nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from foundation.train.config import TrainRunConfig

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def deepspeed_config(cfg: TrainRunConfig, world_size: int) -> dict:
    """The DeepSpeed JSON config of a run (clipping explicit: DeepSpeed would otherwise clip at 1.0)."""
    e = cfg.engine
    ds = {
        "train_micro_batch_size_per_gpu": 1,  # micro-batches are atom-balanced; DeepSpeed only counts them
        "gradient_accumulation_steps": e.grad_accum,
        "train_batch_size": world_size * e.grad_accum,
        "gradient_clipping": float(e.grad_clip),
        "zero_optimization": {"stage": e.zero_stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if e.precision == "bf16":
        ds["bf16"] = {"enabled": True}
    elif e.precision == "fp16":
        ds["fp16"] = {"enabled": True, "initial_scale_power": 16, "loss_scale_window": 1000}
    return ds


def _quiet_deepspeed(cache_dir: Path) -> None:
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache_dir / "torch_extensions"))
    import deepspeed
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = (
        False  # inference-only op; would compile with g++
    )
    from deepspeed.utils import logger

    logger.setLevel(logging.WARNING)


def build_engine(
    model: nn.Module, cfg: TrainRunConfig, world_size: int, device: torch.device, cache_dir: Path
):
    """deepspeed.initialize on `model` (cast to the run's precision, buffers included) with torch AdamW."""
    _quiet_deepspeed(cache_dir)
    import deepspeed

    if cfg.engine.precision == "fp16" and device.type == "cpu":
        raise ValueError(
            "engine.precision: fp16 is not supported by DeepSpeed on CPU; use bf16 or fp32"
        )
    model = model.to(device=device, dtype=DTYPES[cfg.engine.precision])
    o = cfg.optimizer
    groups = optimizer_groups(
        model, cfg.finetune.backbone_lr_scale if cfg.finetune is not None else 1.0
    )
    for group in groups:
        group["lr"] = o.lr * group["lr_scale"]
    optimizer = torch.optim.AdamW(
        groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        config=deepspeed_config(cfg, world_size),
        dist_init_required=False,
    )
    return engine


def optimizer_groups(model: nn.Module, backbone_lr_scale: float = 1.0) -> list[dict]:
    """AdamW parameter groups of the trainable parameters (frozen ones are left out): the backbone's with
    `lr_scale` = backbone_lr_scale, the heads' with 1; `set_lr` gives each group lr * lr_scale."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {
            "params": [p for n, p in trainable if n.startswith("backbone.")],
            "lr_scale": backbone_lr_scale,
        },
        {"params": [p for n, p in trainable if not n.startswith("backbone.")], "lr_scale": 1.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("every parameter is frozen: nothing to train")
    return groups


def set_lr(engine, lr: float) -> None:
    """The schedule's learning rate, times each parameter group's lr_scale (a fine-tuned backbone's is lower)."""
    for group in engine.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def module_grad_norm(engine) -> float | None:
    """The gradient norm from the module's .grad (ZeRO 0 after the boundary backward: already all-reduced);
    None under ZeRO 1/2, whose gradients live in partitions (DeepSpeed records their norm itself)."""
    if engine.zero_optimization_stage() > 0:
        return None
    grads = [
        p.grad.detach().float().norm() for p in engine.module.parameters() if p.grad is not None
    ]
    return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0


def grad_norm(engine, fallback: float | None) -> float:
    """Global gradient norm of the last optimizer step (before clipping); NaN when nobody recorded it."""
    value = engine.get_global_grad_norm()
    if value is None:
        value = fallback
    if value is None:
        return float("nan")
    return float(value.item() if isinstance(value, torch.Tensor) else value)
