"""The DeepSpeed engine against plain torch: ZeRO 0, 1 and 2 take the same steps as torch AdamW with
clip_grad_norm_ on an E/F/S loss (forces and stress by autograd inside forward; the clipping threshold is the
config's, not DeepSpeed's default 1.0); bf16 casts parameters and keeps the float64 normalisers; ZeRO-3 and
fp16 on CPU are refused with the reason."""

from __future__ import annotations

import copy

import pytest
import torch

from foundation.config import ConfigError
from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.models import build_potential
from foundation.train.config import load_train_config
from foundation.train.engine import build_engine, deepspeed_config, set_lr
from foundation.train.objectives import Objective
from tests.train.helpers import TINY_MODEL, tiny_config

CACHE = __import__("pathlib").Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="module")
def batches(train_data):
    frames = open_dataset(train_data, "train", "lmdb")
    return [collate_frames([frames[i] for i in range(k, k + 4)], 4.0) for k in (0, 4, 8)]


def _config(train_data, tmp_path, **engine):
    return load_train_config(
        tiny_config(train_data, tmp_path, engine=engine, optimizer={"lr": 5e-3})
    )


def _loss(model_call, objective, batch):
    outputs = ("energy", "forces", "stress")
    loss, _ = objective.loss(
        objective.errors(model_call(batch, compute=outputs), batch), objective.counts(batch, None)
    )
    return loss


def _plain_torch(model, cfg, batches):
    o = cfg.optimizer
    opt = torch.optim.AdamW(
        model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
    )
    objective = Objective(cfg.objective)
    for batch in batches:
        opt.zero_grad()
        _loss(model, objective, batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.engine.grad_clip)
        opt.step()
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _deepspeed(model, cfg, batches, device):
    engine = build_engine(model, cfg, 1, device, CACHE)
    set_lr(engine, cfg.optimizer.lr)
    objective = Objective(cfg.objective)
    for batch in batches:
        engine.backward(_loss(engine, objective, batch))
        engine.step()
    return engine, {k: v.detach().float().clone() for k, v in engine.module.named_parameters()}


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_deepspeed_steps_equal_plain_torch_steps(group, batches, train_data, tmp_path, stage):
    cfg = _config(
        train_data, tmp_path, zero_stage=stage, grad_clip=0.05
    )  # small: clipping is active
    torch.manual_seed(0)
    model = build_potential(TINY_MODEL).train()
    reference = _plain_torch(copy.deepcopy(model), cfg, batches)
    _, trained = _deepspeed(copy.deepcopy(model), cfg, batches, group.device)
    start = {k: v.detach() for k, v in model.named_parameters()}
    moved = max(float((reference[k] - start[k]).abs().max()) for k in reference)
    assert moved > 1e-4
    for name, value in reference.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_bf16_casts_parameters_and_keeps_float64_normalisers(group, batches, train_data, tmp_path):
    cfg = _config(train_data, tmp_path, zero_stage=0, precision="bf16")
    model = build_potential(TINY_MODEL).train()
    model.set_normalization({"O": -4.9}, scale=0.5)
    before = {k: v.detach().float().clone() for k, v in model.named_parameters()}
    engine, after = _deepspeed(
        model, cfg, batches, group.device
    )  # float32 geometry, as the loop feeds a bf16 model
    assert all(p.dtype == torch.bfloat16 for p in engine.module.parameters())
    assert engine.module.geometry_dtype == torch.float32
    head = engine.module.energy_head
    assert (
        head.element_references.dtype == torch.float64 and float(head.element_references[8]) == -4.9
    )
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values())


def test_deepspeed_config_sets_clipping_and_accumulation_explicitly(train_data, tmp_path):
    ds = deepspeed_config(
        _config(train_data, tmp_path, grad_clip=0.0, grad_accum=3, zero_stage=2), world_size=4
    )
    assert ds["gradient_clipping"] == 0.0 and ds["gradient_accumulation_steps"] == 3
    assert ds["train_batch_size"] == 12 and ds["zero_optimization"] == {"stage": 2}


def test_zero3_and_fp16_on_cpu_are_refused(train_data, tmp_path, group):
    with pytest.raises(ConfigError, match="second-order gradients"):
        _config(train_data, tmp_path, zero_stage=3)
    with pytest.raises(ValueError, match="fp16"):
        build_engine(
            build_potential(TINY_MODEL),
            _config(train_data, tmp_path, precision="fp16"),
            1,
            torch.device("cpu"),
            CACHE,
        )
