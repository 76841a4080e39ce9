"""Fine-tuning a potential (foundation.train.finetune, replay): it starts from the parent's weights with element
references re-fitted for the user's data, frozen parameters stay exact, the backbone learns at its own rate,
unseen elements are refused by name, and replay mixes parent frames into every epoch at the asked fraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from foundation.data.batch import collate_frames
from foundation.data.dataset import FrameDataset
from foundation.data.manifest import Manifest
from foundation.models.loading import load_potential
from foundation.train.config import load_train_config
from foundation.train.engine import optimizer_groups
from foundation.train.finetune import (
    UnseenElementError,
    frozen_prefixes,
    load_parent,
    prepare_finetune,
)
from foundation.train.objectives import Objective
from foundation.train.replay import ReplayFrames, ReplaySampler, replay_count
from foundation.train.runner import run_training
from tests.train.finetune_helpers import (
    parent_config,
    parent_dataset,
    train_parent,
    user_frames,
    write_frames,
)


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every test here runs torch on one thread (tests/conftest.py one_thread)."""


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """(parent data, parent run directory): a tiny SchNet trained 3 steps on real MPtrj frames."""
    root = tmp_path_factory.mktemp("parent")
    data = parent_dataset(root / "data")
    return data, train_parent(data, root / "run")


@pytest.fixture(scope="module")
def user_data(parent, tmp_path_factory):
    """Alexandria frames (other DFT settings, elements the parent knows): 40 train, 12 val of train's elements."""
    frames = user_frames(parent[0])
    train = frames[:40]
    elements = {int(z) for f in train for z in f.numbers}
    val = [f for f in frames[40:] if set(int(z) for z in f.numbers) <= elements][:12]
    return write_frames(tmp_path_factory.mktemp("user") / "data", train, val)


def finetune_config(parent_run, data, run_dir, **finetune):
    cfg = parent_config(data, run_dir, finetune={"parent": str(parent_run), **finetune})
    del cfg["model"]  # the parent's
    return load_train_config(cfg)


def test_starts_from_the_parent_up_to_the_refitted_references(parent, user_data, tmp_path):
    parent_data, parent_run = parent
    start = prepare_finetune(finetune_config(parent_run, user_data, tmp_path / "ft"))
    reference = load_potential(parent_run, "best")
    assert start.config.model == load_parent(parent_run).model_config  # the parent's architecture
    weights = load_file(str(parent_run / "best" / "model.safetensors"))
    for name, value in start.model.state_dict().items():
        if "element_references" not in name:
            assert torch.equal(value, weights[name]), name  # loaded, not re-initialised
    # the references: the user's manifest for the user's elements, the parent's for the rest
    user_refs = Manifest.load(user_data).element_references
    parent_refs = Manifest.load(parent_data).element_references
    refs = start.normalization["element_references"]
    assert all(refs[s] == pytest.approx(v) for s, v in user_refs.items())
    assert all(refs[s] == pytest.approx(v) for s, v in parent_refs.items() if s not in user_refs)
    assert any(
        abs(user_refs[s] - parent_refs[s]) > 1e-3 for s in user_refs
    )  # other DFT settings: they moved

    start.model.set_normalization(**start.normalization)
    start.model.eval()
    frames = list(FrameDataset(user_data, split="train"))[:8]
    batch = collate_frames(frames, reference.cutoff)
    ours, theirs = start.model(batch), reference(batch)
    np.testing.assert_allclose(ours["forces"].numpy(), theirs["forces"].numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(ours["stress"].numpy(), theirs["stress"].numpy(), rtol=0, atol=0)
    shift = start.replay_energy_shift
    delta = torch.tensor(
        [sum(shift.get(int(z), 0.0) for z in f.numbers) for f in frames], dtype=torch.float64
    )
    assert delta.abs().max() > 0.01
    np.testing.assert_allclose(
        (ours["energy"].double() - theirs["energy"].double()).numpy(),
        delta.numpy(),
        rtol=0,
        atol=1e-4,
    )
    # the loss at step 0 is the parent's on the same batch, once its labels are moved to the new references
    objective = Objective(start.config.objective)
    counts = objective.counts(batch, None)
    shifted = collate_frames(frames, reference.cutoff)
    shifted.energy = shifted.energy - delta.to(shifted.energy.dtype)
    ours_loss = objective.loss(objective.errors(ours, batch), counts)[0]
    theirs_loss = objective.loss(objective.errors(theirs, shifted), counts)[0]
    assert float(ours_loss) == pytest.approx(float(theirs_loss), rel=1e-5)


def test_unseen_elements_are_refused_by_name(parent, tmp_path):
    parent_data, parent_run = parent
    frames = user_frames(parent_data, unseen=True)
    data = write_frames(tmp_path / "unseen", frames[:20], frames[20:24])
    known = set(Manifest.load(parent_data).element_references)
    from ase.data import chemical_symbols

    missing = sorted({chemical_symbols[z] for f in frames[:24] for z in f.numbers} - known)
    with pytest.raises(UnseenElementError) as info:
        prepare_finetune(finetune_config(parent_run, data, tmp_path / "ft"))
    assert all(symbol in str(info.value) for symbol in missing), (missing, str(info.value))


def test_frozen_parameters_do_not_change_and_the_backbone_has_its_own_rate(
    parent, user_data, tmp_path
):
    _, parent_run = parent
    cfg = finetune_config(
        parent_run,
        user_data,
        tmp_path / "ft",
        freeze_embedding=True,
        freeze_layers=1,
        backbone_lr_scale=0.5,
    )
    cfg.engine.zero_stage = 1
    cfg.engine.ema_decay = 0.0  # export = the trained weights themselves
    summary = run_training(cfg)
    assert summary["step"] == 3
    before = load_file(str(parent_run / "best" / "model.safetensors"))
    after = load_file(str(tmp_path / "ft" / "last" / "model.safetensors"))
    frozen = ("backbone.embedding.", "backbone.interactions.0.")
    assert frozen_prefixes(load_potential(parent_run), True, 1) == list(frozen)
    for name, value in before.items():
        if name.startswith(frozen):
            assert torch.equal(after[name], value), f"frozen {name} changed"
    trained = [n for n in before if n.startswith(("backbone.interactions.1.", "energy_head.mlp."))]
    assert trained and all(not torch.equal(after[n], before[n]) for n in trained)
    model = load_potential(tmp_path / "ft", "last")
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))
    groups = optimizer_groups(model, 0.5)
    assert [g["lr_scale"] for g in groups] == [0.5, 1.0]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_replay_mixes_parent_frames_into_every_epoch(parent, user_data):
    parent_data, _ = parent
    user = FrameDataset(user_data, split="train")
    replay = FrameDataset(parent_data, split="train")
    sampler = ReplaySampler(user.natoms, [len(user)], replay.natoms, 0.25, 48, seed=3)
    expected = replay_count(len(user), 0.25, len(replay))
    assert expected == round(
        len(user) / 3
    )  # a quarter of all frames: a third as many as the user's
    drawn = []
    for epoch in range(3):
        order = sampler.order(epoch)
        replayed = order[order >= len(user)]
        assert sorted(order[order < len(user)]) == list(range(len(user)))  # every user frame, once
        assert len(replayed) == expected and len(set(replayed)) == expected
        assert (
            0 < np.mean(np.nonzero(order >= len(user))[0]) < len(order)
        )  # interleaved, not appended
        drawn.append(set(replayed.tolist()))
        packed = [i for batch in sampler.plan(epoch) for i in batch]
        assert set(packed) <= set(order.tolist())
    assert drawn[0] != drawn[1]  # a fresh draw each epoch
    shift = {8: 0.5, 26: -1.0}
    frames = ReplayFrames(user, replay, shift)
    assert len(frames) == len(user) + len(replay)
    assert frames[0].energy == user[0].energy
    for k in range(5):
        raw, moved = replay[k], frames[len(user) + k]
        assert moved.energy == pytest.approx(
            raw.energy + sum(shift.get(int(z), 0.0) for z in raw.numbers)
        )


def test_a_run_with_replay_trains_and_records_its_parent(parent, user_data, tmp_path):
    parent_data, parent_run = parent
    cfg = finetune_config(
        parent_run, user_data, tmp_path / "ft", replay_path=str(parent_data), replay_fraction=0.3
    )
    summary = run_training(cfg)
    assert summary["step"] == 3 and np.isfinite(summary["val"]["loss"])
    import json

    meta = json.loads((tmp_path / "ft" / "last" / "model.json").read_text())
    identity = load_parent(parent_run).identity
    assert (
        meta["parent"]["weights_sha256"] == identity["weights_sha256"]
        and meta["parent"]["name"] == "run"
    )
    saved = load_train_config(tmp_path / "ft" / "config.yaml")
    assert saved.model["backbone"]["name"] == "schnet" and saved.finetune.replay_fraction == 0.3
