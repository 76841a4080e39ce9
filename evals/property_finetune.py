"""Fine-tune one (task, fold, seed, training size): the pre-trained model with a property head, or its
from-scratch twin. Both arms get the same architecture, optimiser, schedule, epochs, early stopping and splits;
the only per-arm choice, the backbone learning rate, is picked for each arm by the same grid on the inner
validation split (`run_finetune_selected`). Every unit also scores the trivial predictors (training mean and
median) on the same test fold."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
from foundation.evals.config import PropertyFinetuneConfig
from foundation.evals.metrics import mae, scored_test_fold
from foundation.evals.probe import ridge_head_init
from foundation.evals.tasks.common import PropertyTask, inner_split, training_subset
from torch import nn

from foundation.config import to_dict
from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.models import HeadsConfig, ModelConfig, Potential, PropertyHeadConfig
from foundation.train.finetune import freeze_parameters

# Pre-trained weights that carry over into the property model besides the backbone: the energy head's per-atom
# MLP has the property head's shape (hidden -> hidden/2 -> 1), so it starts the head unless head_init is "fresh".
HEAD_SOURCES = {"property_head.mlp.": "energy_head.mlp."}


def property_model(
    template: ModelConfig,
    property_name: str,
    pooling: str,
    pretrained: Potential | None = None,
    head_init: str = "pretrained",
) -> tuple[Potential, list[str]]:
    """(the template's backbone with only a property head, names of the tensors copied from `pretrained`):
    every backbone weight, and the energy head's MLP into the property head unless head_init is "fresh"."""
    heads = HeadsConfig(
        energy=False,
        forces="none",
        stress="none",
        denoise="none",
        property=PropertyHeadConfig(name=property_name, pooling=pooling),
    )
    model = Potential(ModelConfig(backbone=to_dict(template.backbone), heads=heads))
    if pretrained is None:
        return model, []
    source = pretrained.state_dict()
    target = model.state_dict()
    state = {k: v for k, v in source.items() if k.startswith("backbone.")}
    if head_init == "pretrained":
        for dest, origin in HEAD_SOURCES.items():
            for name in [k for k in target if k.startswith(dest)]:
                donor = origin + name[len(dest) :]
                if donor in source and source[donor].shape == target[name].shape:
                    state[name] = source[donor]
    missing, unexpected = model.load_state_dict(state, strict=False)
    wrong = [k for k in missing if not k.startswith("property_head.")] + list(unexpected)
    if wrong:
        raise ValueError(f"pre-trained backbone does not fit the fine-tuning model: {wrong[:5]}")
    return model, sorted(state)


def _optimizer(
    model: nn.Module, cfg: PropertyFinetuneConfig, backbone_lr: float
) -> torch.optim.Optimizer:
    groups = [
        {
            "params": [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and n.startswith("backbone.")
            ],
            "lr": backbone_lr,
        },
        {
            "params": [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and not n.startswith("backbone.")
            ],
            "lr": cfg.lr,
        },
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, cfg: PropertyFinetuneConfig):
    """The epoch schedule both arms share: halve on a validation plateau, cosine to 1% over max_epochs, or none."""
    if cfg.schedule == "plateau":
        patience = (
            cfg.plateau_patience if cfg.plateau_patience is not None else max(cfg.patience // 3, 1)
        )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=patience)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cfg.max_epochs, eta_min=0.01 * min(g["lr"] for g in opt.param_groups)
        )
    return None


def _batches(
    frames: list[Frame],
    order: np.ndarray,
    size: int,
    model: Potential,
    prop: str,
    device: torch.device,
) -> list[Any]:
    """Graph batches of frames[order] in chunks of `size` (graphs built once, reused every epoch)."""
    out = []
    for start in range(0, len(order), size):
        batch = collate_frames(
            [frames[i] for i in order[start : start + size]],
            model.cutoff,
            max_neighbours=model.max_neighbours,
            dtype=model.dtype,
            properties=(prop,),
        )
        out.append(batch.to(device))
    return out


_TEST_BATCHES: dict[tuple, list[Any]] = {}  # the last test folds' graph batches of this process


def fold_test_batches(
    task: PropertyTask, fold: int, size: int, model: Potential, device: torch.device
) -> list[Any]:
    """Graph batches of a whole test fold, built once per process and reused by every unit that scores it (all
    sizes, seeds and arms of a learning curve score the same fold: with units run in one process, the test graphs
    are built once instead of per unit). At most two folds are kept."""
    key = (
        task.name,
        len(task.frames),
        fold,
        size,
        model.cutoff,
        model.max_neighbours,
        model.dtype,
        str(device),
    )
    if key not in _TEST_BATCHES:
        while len(_TEST_BATCHES) >= 2:
            _TEST_BATCHES.pop(next(iter(_TEST_BATCHES)))
        _TEST_BATCHES[key] = _batches(
            task.frames, task.folds[fold][1], size, model, task.property, device
        )
    return _TEST_BATCHES[key]


def _predict(model: Potential, batches: list[Any], mean: float, std: float) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        parts = [
            model(b, compute=("property",))["property"].double().cpu().numpy() for b in batches
        ]
    return np.concatenate(parts) * std + mean if parts else np.zeros(0)


def run_finetune(
    task: PropertyTask,
    fold: int,
    seed: int,
    cfg: PropertyFinetuneConfig,
    template: ModelConfig,
    pretrained: Potential | None,
    *,
    size: int | None = None,
    backbone_lr: float | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train on `size` structures of the fold's training set (less its inner validation split), stop early on
    the validation MAE, score the whole test fold with the best epoch's weights. `pretrained=None` gives the
    scratch twin; `backbone_lr` (default cfg.backbone_lr, else cfg.lr) is the same rule for both arms."""
    start = time.perf_counter()
    train_all, test_idx = task.folds[fold]
    train_idx = training_subset(train_all, size, fold, seed)
    inner, val = inner_split(train_idx, cfg.val_fraction, seed)
    targets = task.targets
    mean, std = float(targets[inner].mean()), float(targets[inner].std()) or 1.0
    torch.manual_seed(seed)
    model, copied = property_model(template, task.property, cfg.pooling, pretrained, cfg.head_init)
    frozen = freeze_parameters(model, cfg.freeze) if cfg.freeze else 0
    dev = torch.device(device)
    model.to(dev)
    rng = np.random.default_rng(seed + 1)
    train_batches = _batches(
        task.frames, rng.permutation(inner), cfg.batch_size, model, task.property, dev
    )
    val_batches = _batches(task.frames, val, cfg.batch_size, model, task.property, dev)
    test = fold_test_batches(task, fold, cfg.batch_size, model, dev)
    head_fit = (
        ridge_head_init(model, train_batches, val_batches, task.property, mean, std)
        if cfg.head_fit == "ridge"
        else None
    )
    if backbone_lr is None:
        backbone_lr = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr
    opt = _optimizer(model, cfg, backbone_lr)
    sched = _scheduler(opt, cfg)
    loss_fn = nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()
    start_mae = mae(targets[val], _predict(model, val_batches, mean, std)) if head_fit else np.inf
    best = (start_mae, 0, copy.deepcopy(model.state_dict()))
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
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val_mae)
        elif sched is not None:
            sched.step()
        curve.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_mae": val_mae,
                "lr": opt.param_groups[-1]["lr"],
            }
        )
        if val_mae < best[0]:
            best = (val_mae, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    pred = _predict(model, test, mean, std)
    return {
        "kind": "finetune",
        **scored_test_fold(
            [task.frames[i].structure_id for i in test_idx], targets, train_idx, test_idx, pred
        ),
        "curve": curve,
        "best_epoch": best[1],
        "best_val_mae": best[0],
        "epochs_run": len(curve),
        "n_train": int(len(inner)),
        "n_val": int(len(val)),
        "n_test": int(len(test_idx)),
        "n_train_fold": int(len(train_all)),
        "size": size,
        "backbone_lr": backbone_lr,
        "copied_tensors": len(copied),
        "head_copied": any(k.startswith("property_head.") for k in copied),
        "head_fit": head_fit,
        "frozen_tensors": frozen,
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "target_mean": mean,
        "target_std": std,
        "seconds": time.perf_counter() - start,
    }


def run_finetune_selected(
    task: PropertyTask,
    fold: int,
    seed: int,
    cfg: PropertyFinetuneConfig,
    template: ModelConfig,
    pretrained: Potential | None,
    *,
    size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """run_finetune, with the backbone learning rate picked from cfg.backbone_lr_grid (when set) by the lowest
    inner-validation MAE: one full run per candidate, the chosen run's test score reported, every candidate's
    validation MAE listed under "selection" (the test fold plays no part in the choice)."""
    if not cfg.backbone_lr_grid:
        return run_finetune(task, fold, seed, cfg, template, pretrained, size=size, device=device)
    runs = [
        run_finetune(
            task, fold, seed, cfg, template, pretrained, size=size, backbone_lr=lr, device=device
        )
        for lr in cfg.backbone_lr_grid
    ]
    chosen = min(runs, key=lambda r: (not np.isfinite(r["best_val_mae"]), r["best_val_mae"]))
    chosen = dict(chosen)
    chosen["selection"] = [
        {
            "backbone_lr": r["backbone_lr"],
            "best_val_mae": r["best_val_mae"],
            "best_epoch": r["best_epoch"],
        }
        for r in runs
    ]
    chosen["seconds"] = float(sum(r["seconds"] for r in runs))
    return chosen
