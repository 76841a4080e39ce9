"""Mixing prepared datasets in one run (data.sources): atoms drawn by weight, each dataset in its own order, a plan
that is a function of (seed, epoch); a real run on two small datasets logs per-dataset counts; bad mixtures are
clear errors before training starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foundation.config import ConfigError
from foundation.data.writer import write_dataset
from foundation.train.config import load_train_config
from foundation.train.mixture import MixtureSampler, resolve_sources
from foundation.train.run_layout import RunLayout
from foundation.train.runner import run_training
from foundation.train.sampler import frame_order
from tests.train.helpers import element_references, real_frames, tiny_config


def _sampler(weights, seed=0, shuffle="shard"):
    rng = np.random.default_rng(7)
    natoms = [rng.integers(2, 30, 400), rng.integers(2, 30, 100)]
    sizes = [[100, 100, 100, 100], [50, 50]]
    return MixtureSampler(
        natoms, sizes, weights, ["big", "small"], 64, seed=seed, shuffle=shuffle
    ), natoms


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 1.0), (1.0, 4.0)])
def test_atoms_are_drawn_by_weight(weights):
    sampler, natoms = _sampler(weights)
    order = sampler.order(0)
    atoms = np.concatenate(natoms)
    drawn = [atoms[order[order < 400]].sum(), atoms[order[order >= 400]].sum()]
    total = sum(int(n.sum()) for n in natoms)
    for got, weight in zip(drawn, weights):
        assert got == pytest.approx(
            total * weight / sum(weights), abs=30
        )  # within one frame of the share
    assert sampler.drawn(0) == {"big": int((order < 400).sum()), "small": int((order >= 400).sum())}


def test_each_dataset_keeps_its_own_shard_order_and_plans_repeat():
    sampler, _ = _sampler(
        (1.0, 4.0)
    )  # the small set is drawn ~4x its size: fresh orders one after another
    order = sampler.order(3)
    small = order[order >= 400] - 400
    first = frame_order([50, 50], epoch=3, seed=0, shuffle="shard", stream=(1, 0))
    np.testing.assert_array_equal(small[:100], first)
    assert len(small) > 300 and not np.array_equal(small[100:200], first)
    again, _ = _sampler((1.0, 4.0))
    assert again.plan(3) == sampler.plan(3) and sampler.plan(3) != sampler.plan(4)
    assert _sampler((1.0, 4.0), seed=1)[0].plan(3) != sampler.plan(3)


def _dataset(directory, frames, source, shift_per_atom=0.0):
    for f in frames:
        f.source = source
        f.energy += shift_per_atom * f.natoms
    train, val = frames[: len(frames) - 8], frames[len(frames) - 8 :]
    refs = element_references(frames)
    write_dataset(
        directory,
        {"train": train, "val": val},
        containers=("lmdb", "wds"),
        shard_size=16,
        element_references=refs,
        statistics={"frames_by_source": {source: len(train)}},
    )
    return directory


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mix")
    frames = real_frames(72)
    first = _dataset(tmp / "mptrj", frames[:40], "MPtrj")
    second = _dataset(tmp / "alex", frames[40:], "Alexandria", shift_per_atom=1.0)
    return first, second


def test_a_mixture_trains_with_per_dataset_counts_and_per_source_metrics(two_datasets, tmp_path):
    first, second = two_datasets
    cfg = tiny_config(
        first,
        tmp_path / "run",
        data={
            "sources": [{"path": str(first), "weight": 2.0}, {"path": str(second), "weight": 1.0}],
            "default_source": "Alexandria",
            "max_atoms": 48,
            "num_workers": 0,
        },
    )
    summary = run_training(load_train_config(cfg))
    events = [
        json.loads(line)
        for line in RunLayout(tmp_path / "run").metrics_log.read_text().splitlines()
    ]
    mixture = [e for e in events if e["kind"] == "mixture"]
    assert mixture and set(mixture[0]) >= {"mixture/frames/mptrj", "mixture/frames/alex"}
    assert mixture[0]["mixture/frames/mptrj"] > mixture[0]["mixture/frames/alex"]
    assert {"val/energy_mae/MPtrj", "val/energy_mae/Alexandria"} <= set(summary["val"])
    meta = json.loads((tmp_path / "run" / "last" / "model.json").read_text())
    assert meta["model"]["heads"]["sources"] == ["Alexandria", "MPtrj"]
    assert meta["model"]["heads"]["default_source"] == "Alexandria"
    assert meta["dataset"] == [str(first), str(second)]


@pytest.mark.parametrize("weight", [0, -1.0, float("nan")])
def test_a_weight_of_zero_or_below_is_refused(two_datasets, tmp_path, weight):
    first, second = two_datasets
    cfg = tiny_config(
        first,
        tmp_path / "run",
        data={"sources": [{"path": str(first)}, {"path": str(second), "weight": weight}]},
    )
    with pytest.raises(ConfigError, match=r"data.sources\[1\].*weight must be a finite number > 0"):
        load_train_config(cfg)


def test_unknown_sources_are_refused_before_training(two_datasets, tmp_path):
    first, second = two_datasets
    data = {"sources": [{"path": str(first)}, {"path": str(second)}], "default_source": "OMat24"}
    cfg = load_train_config(tiny_config(first, tmp_path / "run", data=data))
    with pytest.raises(ConfigError, match="unknown source 'OMat24'.*Alexandria.*MPtrj"):
        resolve_sources(cfg.data)
    with pytest.raises(ConfigError, match="unknown source 'OMat24'"):
        run_training(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
    # a model whose energy head has references for MPtrj only cannot represent Alexandria frames
    fixed = tiny_config(
        first,
        tmp_path / "fixed",
        data={"sources": data["sources"]},
        model_overrides=["heads.sources=[MPtrj, PBE54]"],
    )
    with pytest.raises(
        ConfigError, match=r"sources \['Alexandria'\] that the model cannot represent"
    ):
        run_training(load_train_config(fixed))
    twice = tiny_config(
        first, tmp_path / "twice", data={"sources": [{"path": str(first)}, {"path": str(first)}]}
    )
    with pytest.raises(ConfigError, match="lists a dataset twice"):
        load_train_config(twice)


@pytest.mark.slow
def test_sigkill_and_resume_of_a_mixture_is_bit_exact(two_datasets, tmp_path):
    """The WebDataset mixture killed at a random step past its first checkpoint and resumed ends with the weights
    and losses of the uninterrupted run (the plan, the draw by weight included, is a function of seed and epoch)."""
    import random

    import yaml

    from tests.train.test_resume import MAX_STEPS, _run, _run_and_kill, _train_losses, _weights

    first, second = two_datasets
    cfg = tiny_config(
        first,
        tmp_path / "unused",
        engine={"ema_decay": 0.0},
        data={
            "sources": [{"path": str(first), "weight": 1.0}, {"path": str(second), "weight": 3.0}],
            "container": "wds",
            "max_atoms": 64,
        },
        train={
            "max_steps": MAX_STEPS,
            "checkpoint_every": 2,
            "val_every": 4,
            "log_every": 1,
            "keep_checkpoints": 2,
        },
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _run(config, 1, reference)
    killed_at = _run_and_kill(config, 1, resumed, random.Random())
    _run(config, 1, resumed)
    assert f"step {killed_at}" in (resumed / "train.log").read_text()
    assert _train_losses(resumed) == _train_losses(reference)
    ref, res = _weights(reference), _weights(resumed)
    assert ref.keys() == res.keys() and all(ref[name].equal(res[name]) for name in ref)
    events = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "mixture" and e["step"] > 0 for e in events), "the run crossed no epoch"
