"""Learning-rate schedules (warm-up, cosine, plateau) with resumable state, and the EMA of the weights."""

from __future__ import annotations

import pytest
import torch

from foundation.train.config import OptimizerConfig, ScheduleConfig
from foundation.train.ema import EMA
from foundation.train.schedule import LRSchedule


def test_warmup_then_cosine_to_the_floor():
    s = LRSchedule(
        ScheduleConfig(kind="cosine", warmup_steps=4, min_lr_ratio=0.1),
        OptimizerConfig(lr=1.0),
        104,
    )
    assert [s.lr(k) for k in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert (
        s.lr(4) == pytest.approx(1.0)
        and s.lr(54) == pytest.approx(0.55)
        and s.lr(104) == pytest.approx(0.1)
    )
    assert all(s.lr(k) >= s.lr(k + 1) for k in range(4, 104))


def test_plateau_cuts_after_patience_and_resumes_its_state():
    s = LRSchedule(
        ScheduleConfig(kind="plateau", plateau_patience=2, plateau_factor=0.5),
        OptimizerConfig(lr=1.0),
        10,
    )
    for loss in (3.0, 2.0, 2.5, 2.4):
        s.observe(loss)
    assert s.lr(5) == 0.5
    resumed = LRSchedule(
        ScheduleConfig(kind="plateau", plateau_patience=2, plateau_factor=0.5),
        OptimizerConfig(lr=1.0),
        10,
    )
    resumed.load_state_dict(s.state_dict())
    for sched in (s, resumed):
        sched.observe(2.1)
        sched.observe(2.2)
    assert s.lr(5) == resumed.lr(5) == 0.25


def test_ema_tracks_weights_and_exports_fp32_with_float64_buffers():
    module = torch.nn.Linear(3, 1)
    module.register_buffer("reference", torch.ones(2, dtype=torch.float64))
    ema = EMA(module, decay=0.5)
    with torch.no_grad():
        module.weight.fill_(2.0)
    for _ in range(30):
        ema.update(module)
    state = ema.state_dict(module)
    assert torch.allclose(state["weight"], torch.full((1, 3), 2.0), atol=1e-6)
    assert state["reference"].dtype == torch.float64 and state["weight"].dtype == torch.float32
    module.to(torch.bfloat16)
    assert ema.state_dict(module)["bias"].dtype == torch.float32
    plain = EMA(module, decay=0.0)
    with torch.no_grad():
        module.weight.fill_(3.0)
    plain.update(module)
    assert torch.equal(
        plain.shadow["weight"], module.weight.float()
    )  # decay 0: exactly the weights


def test_normalisation_comes_from_the_manifest_statistics():
    from foundation.data.manifest import Manifest
    from foundation.train.runner import normalization_from_manifest

    manifest = Manifest(
        shards=[],
        element_references={"O": -4.9},
        statistics={"force_rms": 0.56, "energy_per_atom_mean": 0.19},
    )
    assert normalization_from_manifest(manifest) == {
        "element_references": {"O": -4.9},
        "scale": 0.56,
        "shift": 0.19,
        "forces_scale": 0.56,
        "stress_scale": 1.0,
    }
    with_stress = Manifest(shards=[], statistics={"force_rms": 0.56, "stress_rms": 0.02})
    assert (
        normalization_from_manifest(with_stress)["stress_scale"] == 0.02
    )  # direct stress head: label RMS
    assert normalization_from_manifest(Manifest(shards=[])) == {
        "element_references": {},
        "scale": 1.0,
        "shift": 0.0,
        "forces_scale": 1.0,
        "stress_scale": 1.0,
    }
