"""Fine-tune one (task, fold, seed): the pre-trained backbone with a new property head, or its from-scratch
twin (same architecture, budget and splits), with early stopping on an inner validation split."""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from foundation.evals.config import FinetuneConfig
from foundation.evals.metrics import mae, regression_metrics
from foundation.evals.tasks.common import PropertyTask
from foundation.config import to_dict
from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.models import HeadsConfig, ModelConfig, Potential, PropertyHeadConfig


def property_model(template: ModelConfig, property_name: str, pooling: str,
                   pretrained: Potential | None = None) -> Potential:
    """The template's backbone with only a property head; backbone weights copied from `pretrained` if given."""
    heads = HeadsConfig(energy=False, forces="none", stress="none", denoise="none",
                        property=PropertyHeadConfig(name=property_name, pooling=pooling))
    model = Potential(ModelConfig(backbone=to_dict(template.backbone), heads=heads))
    if pretrained is not None:
        state = {k: v for k, v in pretrained.state_dict().items() if k.startswith("backbone.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        wrong = [k for k in missing if not k.startswith("property_head.")] + list(unexpected)
        if wrong:
            raise ValueError(f"pre-trained backbone does not fit the fine-tuning model: {wrong[:5]}")
    return model


def freeze_parameters(model: nn.Module, prefixes: Sequence[str]) -> int:
    """Stop gradients of parameters whose names start with any prefix; returns how many tensors were frozen."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ValueError(f"freeze prefix {prefix!r} matches no parameter (e.g. {', '.join(names[:6])})")
    frozen = 0
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
            frozen += 1
    return frozen


def _optimizer(model: nn.Module, cfg: FinetuneConfig, pretrained: bool) -> torch.optim.Optimizer:
    backbone_lr = cfg.backbone_lr if (pretrained and cfg.backbone_lr is not None) else cfg.lr
    groups = [{"params": [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")],
               "lr": backbone_lr},
              {"params": [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")],
               "lr": cfg.lr}]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def _batches(frames: list[Frame], order: np.ndarray, size: int, model: Potential, prop: str,
             device: torch.device) -> list[Any]:
    """Graph batches of frames[order] in chunks of `size` (graphs built once, reused every epoch)."""
    out = []
    for start in range(0, len(order), size):
        batch = collate_frames([frames[i] for i in order[start:start + size]], model.cutoff,
                               max_neighbours=model.max_neighbours, dtype=model.dtype, properties=(prop,))
        out.append(batch.to(device))
    return out


def _predict(model: Potential, batches: list[Any], mean: float, std: float) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        parts = [model(b, compute=("property",))["property"].double().cpu().numpy() for b in batches]
    return np.concatenate(parts) * std + mean if parts else np.zeros(0)


def inner_split(train_idx: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner train, validation) carved from a training fold; the same for both variants of a seed."""
    perm = np.random.default_rng(seed).permutation(train_idx)
    n_val = max(1, int(round(val_fraction * len(perm))))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def run_finetune(task: PropertyTask, fold: int, seed: int, cfg: FinetuneConfig, template: ModelConfig,
                 pretrained: Potential | None, device: str = "cpu") -> dict[str, Any]:
    """Train on the fold's inner training split, stop early on its validation MAE, score the test split with the
    best epoch's weights. `pretrained=None` gives the scratch twin. Returns the unit's result record."""
    start = time.perf_counter()
    train_idx, test_idx = task.folds[fold]
    inner, val = inner_split(train_idx, cfg.val_fraction, seed)
    targets = task.targets
    mean, std = float(targets[inner].mean()), float(targets[inner].std()) or 1.0
    torch.manual_seed(seed)
    model = property_model(template, task.property, cfg.pooling, pretrained)
    frozen = freeze_parameters(model, cfg.freeze) if pretrained is not None and cfg.freeze else 0
    dev = torch.device(device)
    model.to(dev)
    rng = np.random.default_rng(seed + 1)
    train_batches = _batches(task.frames, rng.permutation(inner), cfg.batch_size, model, task.property, dev)
    val_batches = _batches(task.frames, val, cfg.batch_size, model, task.property, dev)
    test_batches = _batches(task.frames, test_idx, cfg.batch_size, model, task.property, dev)
    opt = _optimizer(model, cfg, pretrained is not None)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(cfg.patience // 3, 1))
    loss_fn = nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()
    best = (float("inf"), 0, copy.deepcopy(model.state_dict()))
    curve = []
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        losses = []
        for i in rng.permutation(len(train_batches)):
            batch = train_batches[i]
            target = (batch.properties[task.property].to(torch.float64) - mean) / std
            pred = model(batch, compute=("property",))["property"]
            loss = loss_fn(pred, target.to(pred.dtype))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
        val_mae = mae(targets[val], _predict(model, val_batches, mean, std))
        sched.step(val_mae)
        curve.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mae": val_mae,
                      "lr": opt.param_groups[-1]["lr"]})
        if val_mae < best[0]:
            best = (val_mae, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    pred = _predict(model, test_batches, mean, std)
    return {"kind": "finetune", "metrics": regression_metrics(targets[test_idx], pred),
            "predictions": {"ids": [task.frames[i].structure_id for i in test_idx],
                            "y_true": targets[test_idx].tolist(), "y_pred": pred.tolist()},
            "curve": curve, "best_epoch": best[1], "best_val_mae": best[0], "epochs_run": len(curve),
            "n_train": int(len(inner)), "n_val": int(len(val)), "n_test": int(len(test_idx)),
            "frozen_tensors": frozen,
            "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "target_mean": mean, "target_std": std, "seconds": time.perf_counter() - start}
