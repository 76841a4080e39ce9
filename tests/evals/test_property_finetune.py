"""Fine-tuning mechanics: weight transfer, freezing, one recipe for both arms, the per-arm learning-rate grid,
training subsets, inner split, early stopping, baselines; the frozen-feature ridge probe."""

import dataclasses

import numpy as np
import pytest
import torch
from foundation.evals.config import PropertyFinetuneConfig
from foundation.evals.probe import (
    RIDGE_ALPHAS,
    fit_ridge,
    predict_ridge,
    ridge_head_init,
    run_probe,
    select_ridge_alpha,
)
from foundation.evals.property_finetune import (
    _batches,
    _predict,
    freeze_parameters,
    property_model,
    run_finetune,
    run_finetune_selected,
)
from foundation.evals.tasks.common import inner_split, restrict, training_subset
from foundation.evals.tasks.dcdft import load_dcdft_task

from foundation import build_potential
from foundation.config import ConfigError, from_dict
from foundation.models.blocks import segment_mean

TINY = {"backbone": {"name": "schnet", "hidden": 8, "layers": 2, "cutoff": 3.5, "num_radial": 8}}


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(1)
    return build_potential(TINY)


def test_property_model_copies_every_matching_weight(pretrained):
    model, copied = property_model(pretrained.config, "y", "sum", pretrained)
    assert model.outputs == ("property",) and model.energy_head is None
    for name, value in pretrained.state_dict().items():
        if name.startswith("backbone."):
            assert torch.equal(model.state_dict()[name], value)
    head = {k for k in model.state_dict() if k.startswith("property_head.")}
    assert head and head <= set(copied)  # the energy head's MLP starts the property head
    for name in head:
        assert torch.equal(
            model.state_dict()[name],
            pretrained.state_dict()[name.replace("property_head.mlp.", "energy_head.mlp.")],
        )
    fresh, copied_fresh = property_model(
        pretrained.config, "y", "sum", pretrained, head_init="fresh"
    )
    assert set(copied_fresh) == set(copied) - head
    assert not any(
        torch.equal(fresh.state_dict()[n], model.state_dict()[n])
        for n in head
        if n.endswith("weight")
    )
    scratch, none = property_model(pretrained.config, "y", "sum")
    assert none == []
    assert not torch.equal(
        scratch.state_dict()["backbone.embedding.weight"],
        pretrained.state_dict()["backbone.embedding.weight"],
    )


def test_freeze_by_prefix(pretrained):
    model, _ = property_model(pretrained.config, "y", "mean", pretrained)
    assert freeze_parameters(model, ["backbone.interactions.0"]) > 0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("backbone.interactions.0.") for n in frozen)
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze_parameters(model, ["backbone.nonexistent"])


def test_inner_split_is_disjoint_and_seeded():
    train = np.arange(10, 50)
    inner, val = inner_split(train, 0.25, seed=3)
    assert len(val) == 10 and not set(inner) & set(val) and set(inner) | set(val) == set(train)
    assert np.array_equal(inner_split(train, 0.25, seed=3)[1], val)
    assert not np.array_equal(inner_split(train, 0.25, seed=4)[1], val)


def test_fold_result_and_early_stopping(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(24))
    cfg = PropertyFinetuneConfig(
        max_epochs=6, patience=2, batch_size=8, lr=1e-2, backbone_lr=1e-3, val_fraction=0.2
    )
    result = run_finetune(task, 0, 0, cfg, pretrained.config, pretrained)
    assert 1 <= result["best_epoch"] <= result["epochs_run"] <= 6
    assert result["epochs_run"] - result["best_epoch"] <= cfg.patience
    assert result["n_train"] + result["n_val"] == len(task.folds[0][0])
    assert len(result["predictions"]["y_pred"]) == result["n_test"] == len(task.folds[0][1])
    assert result["metrics"]["mae"] == pytest.approx(
        np.mean(
            np.abs(np.subtract(result["predictions"]["y_pred"], result["predictions"]["y_true"]))
        )
    )
    frozen = PropertyFinetuneConfig(
        max_epochs=30, patience=3, batch_size=8, lr=0.0, val_fraction=0.2
    )
    flat = run_finetune(task, 0, 0, frozen, pretrained.config, pretrained)
    assert (
        flat["epochs_run"] == 1 + frozen.patience
    )  # nothing learns: no epoch beats the first, stop after patience
    assert len({round(c["val_mae"], 9) for c in flat["curve"]}) == 1


def test_training_subsets_are_nested_paired_and_leave_the_test_fold_whole():
    train = np.arange(100, 400)
    small, large = training_subset(train, 30, 0, 1), training_subset(train, 100, 0, 1)
    assert len(small) == 30 and len(large) == 100 and set(small) <= set(large) <= set(train)
    assert np.array_equal(training_subset(train, 30, 0, 1), small)  # the same for every arm
    assert not np.array_equal(
        training_subset(train, 30, 0, 2), small
    )  # seeds draw different subsets
    assert np.array_equal(training_subset(train, None, 0, 1), train)
    task = restrict(load_dcdft_task(num_folds=3), np.arange(30))
    cfg = PropertyFinetuneConfig(max_epochs=2, patience=2, batch_size=8, val_fraction=0.2)
    result = run_finetune(task, 0, 0, cfg, TINY_CONFIG(), None, size=10)
    assert result["n_train"] + result["n_val"] == 10 and result["n_test"] == len(task.folds[0][1])


def TINY_CONFIG():
    return build_potential(TINY).config


def test_both_arms_share_the_recipe_and_the_baseline(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(24))
    cfg = PropertyFinetuneConfig(
        max_epochs=2,
        patience=2,
        batch_size=8,
        lr=1e-2,
        backbone_lr=1e-3,
        val_fraction=0.2,
        freeze=["backbone.embedding"],
    )
    pre = run_finetune(task, 0, 0, cfg, pretrained.config, pretrained)
    scr = run_finetune(task, 0, 0, cfg, pretrained.config, None)
    assert pre["backbone_lr"] == scr["backbone_lr"] == 1e-3
    assert pre["frozen_tensors"] == scr["frozen_tensors"] == 1
    assert pre["trainable_parameters"] == scr["trainable_parameters"]
    assert pre["baselines"] == scr["baselines"]
    train_idx = task.folds[0][0]
    test_y = task.targets[task.folds[0][1]]
    assert pre["baselines"]["mean"]["mae"] == pytest.approx(
        np.mean(np.abs(test_y - task.targets[train_idx].mean()))
    )
    assert pre["baselines"]["median"]["mae"] == pytest.approx(
        np.mean(np.abs(test_y - np.median(task.targets[train_idx])))
    )


def test_backbone_lr_grid_picks_by_validation_for_each_arm(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(24))
    cfg = PropertyFinetuneConfig(
        max_epochs=2,
        patience=2,
        batch_size=8,
        lr=1e-2,
        backbone_lr_grid=[0.0, 1e-2],
        val_fraction=0.2,
    )
    result = run_finetune_selected(task, 0, 0, cfg, pretrained.config, pretrained)
    assert [c["backbone_lr"] for c in result["selection"]] == [0.0, 1e-2]
    best = min(result["selection"], key=lambda c: c["best_val_mae"])
    assert (
        result["backbone_lr"] == best["backbone_lr"]
        and result["best_val_mae"] == best["best_val_mae"]
    )


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * [1, 10, 0.1, 1, 3] + 4
    y = x @ np.array([1.0, -0.2, 5.0, 0.0, 0.5]) + 2
    model = fit_ridge(x, y, 1e-8)
    assert np.allclose(predict_ridge(model, x), y, atol=1e-6)
    shrunk = fit_ridge(x, y, 1e3)
    assert np.abs(shrunk[0]).sum() < np.abs(model[0]).sum()


def test_probe_on_pretrained_and_random_features(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(30))
    pre = run_probe(task, 0, 0, None, pretrained, random=False)
    rnd = run_probe(task, 0, 0, None, pretrained, random=True)
    assert pre["features"] == rnd["features"] == 8 and pre["n_test"] == len(task.folds[0][1])
    assert pre["baselines"] == rnd["baselines"] and pre["alpha"] in [
        a["alpha"] for a in pre["alpha_val_mae"]
    ]
    assert pre["metrics"]["mae"] != rnd["metrics"]["mae"]  # different features


def test_test_fold_graphs_are_built_once_per_process(pretrained):
    from foundation.evals import property_finetune

    task = restrict(load_dcdft_task(num_folds=3), np.arange(24))
    property_finetune._TEST_BATCHES.clear()
    first = property_finetune.fold_test_batches(task, 1, 8, pretrained, torch.device("cpu"))
    assert property_finetune.fold_test_batches(task, 1, 8, pretrained, torch.device("cpu")) is first
    assert sum(b.num_graphs for b in first) == len(task.folds[1][1])
    cfg = PropertyFinetuneConfig(max_epochs=1, patience=1, batch_size=8, val_fraction=0.2)
    a = run_finetune(task, 1, 0, cfg, pretrained.config, pretrained, size=10)
    b = run_finetune(
        task, 1, 0, cfg, pretrained.config, pretrained, size=10
    )  # the cached graphs: same scores
    assert a["predictions"] == b["predictions"] and len(property_finetune._TEST_BATCHES) == 1


def _penultimate_pooled(model, batches):
    """Mean-pooled penultimate head features of `batches`, computed independently of ridge_head_init."""
    with torch.no_grad():
        parts = []
        for batch in batches:
            features, graph = model.embed(batch)
            hidden = model.property_head.mlp[:-1](features.scalars).double()
            parts.append(segment_mean(hidden, graph.batch, graph.num_graphs).numpy())
    return np.concatenate(parts)


def test_ridge_head_init_makes_the_head_the_ridge_fit(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(30))
    model, _ = property_model(pretrained.config, task.property, "mean", pretrained)
    fit_idx, val_idx = np.arange(0, 20), np.arange(20, 30)
    fit, val = (
        _batches(task.frames, idx, 8, model, task.property, "cpu") for idx in (fit_idx, val_idx)
    )
    mean, std = float(task.targets[fit_idx].mean()), float(task.targets[fit_idx].std())
    info = ridge_head_init(model, fit, val, task.property, mean, std)
    x_fit, x_val = _penultimate_pooled(model, fit), _penultimate_pooled(model, val)
    z_fit, z_val = ((task.targets[i] - mean) / std for i in (fit_idx, val_idx))
    alpha, scores = select_ridge_alpha(x_fit, z_fit, x_val, z_val)
    assert info["alpha"] == alpha and info["val_mae"] == pytest.approx(min(scores), rel=1e-6)
    w, intercept, mu, scale = fit_ridge(x_fit, z_fit, alpha)
    head = model.property_head.mlp[-1]
    assert np.allclose(head.weight.detach().double().numpy().ravel(), w / scale, rtol=1e-5)
    assert head.bias.item() == pytest.approx(intercept - (mu / scale) @ w, rel=1e-5)
    # the model's first prediction is the ridge fit's prediction
    first = _predict(model, val, mean, std)
    ridge = predict_ridge((w, intercept, mu, scale), x_val) * std + mean
    assert np.allclose(first, ridge, rtol=1e-4, atol=1e-4 * std)
    with pytest.raises(ValueError, match="mean pooling"):
        summed, _ = property_model(pretrained.config, task.property, "sum", pretrained)
        ridge_head_init(summed, fit, val, task.property, mean, std)


def test_head_fit_ridge_starts_fine_tuning_from_the_linear_probe(pretrained):
    task = restrict(load_dcdft_task(num_folds=3), np.arange(30))
    still = PropertyFinetuneConfig(
        max_epochs=3, patience=3, batch_size=8, lr=0.0, val_fraction=0.2, head_fit="ridge"
    )
    for arm in (pretrained, None):  # both arms start from their own features' ridge fit
        result = run_finetune(task, 0, 0, still, pretrained.config, arm)
        assert result["head_fit"]["alpha"] in RIDGE_ALPHAS
        # nothing learns at lr 0: the starting point (epoch 0, the ridge fit) is kept
        assert result["best_epoch"] == 0
        assert result["best_val_mae"] == pytest.approx(result["curve"][0]["val_mae"])
    plain = run_finetune(
        task, 0, 0, dataclasses.replace(still, head_fit="none"), pretrained.config, pretrained
    )
    assert plain["head_fit"] is None and plain["best_epoch"] >= 1


def test_head_fit_is_validated():
    assert PropertyFinetuneConfig().head_fit == "none"
    with pytest.raises(ConfigError, match="head_fit: ridge needs pooling: mean"):
        PropertyFinetuneConfig(head_fit="ridge", pooling="sum")
    with pytest.raises(ConfigError, match="head_fit"):
        from_dict(PropertyFinetuneConfig, {"head_fit": "lasso"})
