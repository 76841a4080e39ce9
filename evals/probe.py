"""The frozen-backbone probe: ridge regression of a property on pooled backbone features, for the pre-trained
backbone and for a randomly initialised one of the same architecture. A cheap readout of what pre-training put
into the representation (no gradient steps, seconds per fold)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from foundation.evals.metrics import mae, scored_test_fold
from foundation.evals.tasks.common import PropertyTask, inner_split, training_subset

from foundation.data.batch import collate_frames
from foundation.models import Potential
from foundation.models.blocks import scatter_sum, segment_mean

RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))
VAL_FRACTION = 0.1


@torch.no_grad()
def pooled_features(
    model: Potential,
    frames: list,
    index: np.ndarray,
    *,
    pooling: str = "mean",
    batch_size: int = 32,
    device: str = "cpu",
) -> np.ndarray:
    """(len(index), hidden) float64: the backbone's invariant per-atom features pooled per structure."""
    model.eval().to(device)
    pool = segment_mean if pooling == "mean" else scatter_sum
    parts = []
    for start in range(0, len(index), batch_size):
        batch = collate_frames(
            [frames[i] for i in index[start : start + batch_size]],
            model.cutoff,
            max_neighbours=model.max_neighbours,
            dtype=model.dtype,
        ).to(torch.device(device))
        features, graph = model.embed(batch)
        parts.append(pool(features.scalars.double(), graph.batch, graph.num_graphs).cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def fit_ridge(
    x: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(weights, intercept, feature mean, feature scale) of ridge regression on standardised features."""
    mu, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - mu) / scale
    w = np.linalg.solve(z.T @ z + alpha * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return w, float(y.mean()), mu, scale


def predict_ridge(
    model: tuple[np.ndarray, float, np.ndarray, np.ndarray], x: np.ndarray
) -> np.ndarray:
    w, intercept, mu, scale = model
    return ((x - mu) / scale) @ w + intercept


def select_ridge_alpha(
    x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[float, list[float]]:
    """(the ridge penalty of RIDGE_ALPHAS with the lowest validation MAE, every penalty's validation MAE): each
    penalty fitted on (x_fit, y_fit), scored on (x_val, y_val)."""
    scores = [mae(y_val, predict_ridge(fit_ridge(x_fit, y_fit, a), x_val)) for a in RIDGE_ALPHAS]
    return RIDGE_ALPHAS[int(np.nanargmin(scores))], scores


@torch.no_grad()
def ridge_head_init(
    model: Potential,
    fit: list[Any],
    val: list[Any],
    property_name: str,
    mean: float,
    std: float,
) -> dict[str, Any]:
    """LP-FT's linear probe (Kumar et al. 2022): set the property head's output layer to the ridge regression of
    the standardised target ((y - mean) / std) on each structure's mean-pooled penultimate head features of the
    model as it is, fitted on the `fit` graph batches with the penalty of the lowest MAE on the `val` batches.
    Pooling and the output layer are linear, so the model then predicts exactly what that ridge fit predicts.
    Returns the penalty and its validation MAE (standardised units)."""
    head = model.property_head
    if head is None or head.pooling != "mean":
        raise ValueError("ridge_head_init needs a property head with mean pooling")
    model.eval()

    def pooled(batches: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for batch in batches:
            features, graph = model.embed(batch)
            hidden = head.mlp[:-1](features.scalars).double()
            xs.append(segment_mean(hidden, graph.batch, graph.num_graphs).cpu().numpy())
            ys.append((batch.properties[property_name].double().cpu().numpy() - mean) / std)
        return np.concatenate(xs), np.concatenate(ys)

    (x_fit, y_fit), (x_val, y_val) = pooled(fit), pooled(val)
    alpha, scores = select_ridge_alpha(x_fit, y_fit, x_val, y_val)
    w, intercept, mu, scale = fit_ridge(x_fit, y_fit, alpha)
    out = head.mlp[-1]
    out.weight.copy_(torch.as_tensor(w / scale, dtype=out.weight.dtype).reshape(out.weight.shape))
    out.bias.fill_(intercept - float((mu / scale) @ w))
    return {"alpha": alpha, "val_mae": float(min(scores))}


def run_probe(
    task: PropertyTask,
    fold: int,
    seed: int,
    size: int | None,
    pretrained: Potential,
    *,
    random: bool,
    pooling: str = "mean",
    device: str = "cpu",
) -> dict[str, Any]:
    """Ridge probe on one (fold, seed, size): the penalty is chosen on an inner validation split of the training
    subset (the same subset and split as fine-tuning), then refitted on the whole subset and scored on the whole
    test fold. `random=True` probes a freshly initialised backbone (seeded) instead of the pre-trained one."""
    start = time.perf_counter()
    train_all, test_idx = task.folds[fold]
    train_idx = training_subset(train_all, size, fold, seed)
    inner, val = inner_split(train_idx, VAL_FRACTION, seed)
    if random:
        torch.manual_seed(seed)
        model = Potential(pretrained.config)
    else:
        model = pretrained
    targets = task.targets
    feats = {
        name: pooled_features(model, task.frames, idx, pooling=pooling, device=device)
        for name, idx in (("inner", inner), ("val", val), ("test", test_idx))
    }
    alpha, scores = select_ridge_alpha(feats["inner"], targets[inner], feats["val"], targets[val])
    fitted = fit_ridge(
        np.concatenate([feats["inner"], feats["val"]]), targets[np.concatenate([inner, val])], alpha
    )
    pred = predict_ridge(fitted, feats["test"])
    return {
        "kind": "probe",
        **scored_test_fold(
            [task.frames[i].structure_id for i in test_idx], targets, train_idx, test_idx, pred
        ),
        "alpha": alpha,
        "alpha_val_mae": [{"alpha": a, "val_mae": s} for a, s in zip(RIDGE_ALPHAS, scores)],
        "n_train": int(len(inner)),
        "n_val": int(len(val)),
        "n_test": int(len(test_idx)),
        "n_train_fold": int(len(train_all)),
        "size": size,
        "features": int(feats["test"].shape[1]),
        "random_backbone": random,
        "seconds": time.perf_counter() - start,
    }
