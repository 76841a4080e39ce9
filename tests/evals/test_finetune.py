"""Fine-tuning mechanics: backbone transfer, freezing, backbone learning rate, inner split, early stopping."""

import numpy as np
import pytest
import torch

from foundation.evals.config import FinetuneConfig
from foundation.evals.finetune import freeze_parameters, inner_split, property_model, run_finetune
from foundation.evals.tasks.common import restrict
from foundation.evals.tasks.dcdft import load_dcdft_task
from foundation import build_potential

TINY = {"backbone": {"name": "schnet", "hidden": 8, "layers": 2, "cutoff": 3.5, "num_radial": 8}}


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(1)
    return build_potential(TINY)


def test_property_model_takes_the_backbone_and_a_new_head(pretrained):
    model = property_model(pretrained.config, "y", "sum", pretrained)
    assert model.outputs == ("property",) and model.energy_head is None
    for name, value in pretrained.state_dict().items():
        if name.startswith("backbone."):
            assert torch.equal(model.state_dict()[name], value)
    scratch = property_model(pretrained.config, "y", "sum")
    assert not torch.equal(scratch.state_dict()["backbone.embedding.weight"],
                           pretrained.state_dict()["backbone.embedding.weight"])


def test_freeze_by_prefix(pretrained):
    model = property_model(pretrained.config, "y", "mean", pretrained)
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
    cfg = FinetuneConfig(max_epochs=6, patience=2, batch_size=8, lr=1e-2, backbone_lr=1e-3, val_fraction=0.2)
    result = run_finetune(task, 0, 0, cfg, pretrained.config, pretrained)
    assert 1 <= result["best_epoch"] <= result["epochs_run"] <= 6
    assert result["epochs_run"] - result["best_epoch"] <= cfg.patience
    assert result["n_train"] + result["n_val"] == len(task.folds[0][0])
    assert len(result["predictions"]["y_pred"]) == result["n_test"] == len(task.folds[0][1])
    assert result["metrics"]["mae"] == pytest.approx(np.mean(np.abs(
        np.subtract(result["predictions"]["y_pred"], result["predictions"]["y_true"]))))
    frozen = FinetuneConfig(max_epochs=30, patience=3, batch_size=8, lr=0.0, val_fraction=0.2)
    flat = run_finetune(task, 0, 0, frozen, pretrained.config, pretrained)
    assert flat["epochs_run"] == 1 + frozen.patience  # nothing learns: no epoch beats the first, stop after patience
    assert len({round(c["val_mae"], 9) for c in flat["curve"]}) == 1
