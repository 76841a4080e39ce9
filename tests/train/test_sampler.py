"""The atoms-balanced distributed sampler: capacity, coverage, determinism, equal micro-batch counts per rank,
and planning from the manifest's atom counts without opening a record."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from foundation.train.sampler import AtomsBalancedSampler, frame_order, pack

NATOMS = np.random.default_rng(0).integers(1, 40, size=203)
SHARDS = [64, 64, 64, 11]


def _sampler(rank=0, world=1, gas=1, **kw):
    return AtomsBalancedSampler(
        NATOMS, SHARDS, 100, rank=rank, world_size=world, grad_accum=gas, seed=7, **kw
    )


def test_micro_batches_fill_up_to_max_atoms():
    plan = _sampler(drop_last=False).plan(0)
    sizes = [int(NATOMS[list(b)].sum()) for b in plan]
    assert max(sizes) <= 100
    # greedy: a micro-batch closes only when the next frame would not fit
    for batch, following in zip(plan, plan[1:]):
        assert NATOMS[list(batch)].sum() + NATOMS[following[0]] > 100
    assert sorted(i for b in plan for i in b) == list(range(len(NATOMS)))


def test_a_frame_larger_than_max_atoms_sits_alone():
    assert pack(np.arange(3), np.array([5, 500, 5]), 100) == [(0,), (1,), (2,)]


@pytest.mark.parametrize("world, gas", [(2, 1), (3, 2)])
def test_every_rank_gets_the_same_number_of_micro_batches(world, gas):
    samplers = [_sampler(rank=r, world=world, gas=gas) for r in range(world)]
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        counts = {len(list(s)) for s in samplers}
        assert len(counts) == 1 and counts.pop() % gas == 0
        seen = [i for s in samplers for key in s for i in key.indices]
        assert len(seen) == len(set(seen))  # no frame twice in an epoch
        full = _sampler(drop_last=False).plan(epoch)
        assert (
            len(full) - len(samplers[0].plan(epoch)) == samplers[0].dropped < world * gas
        )  # only the remainder


def test_plan_is_deterministic_per_epoch_and_seed_and_changes_between_epochs():
    assert _sampler().plan(3) == _sampler().plan(3)
    assert _sampler().plan(3) != _sampler().plan(4)
    other_seed = AtomsBalancedSampler(NATOMS, SHARDS, 100, seed=8)
    assert other_seed.plan(3) != _sampler().plan(3)


def test_shard_shuffle_keeps_shards_contiguous_and_resume_position():
    order = frame_order(SHARDS, epoch=2, seed=1, shuffle="shard")
    offsets = np.cumsum([0] + SHARDS)
    shard_of = np.searchsorted(offsets, order, side="right") - 1
    assert (np.diff(shard_of) != 0).sum() == len(SHARDS) - 1
    s = _sampler(world=2, rank=1)
    s.set_epoch(1)
    keys = list(s)
    s.set_epoch(1, start=5)
    assert list(s) == keys[5:] and len(s) == len(keys) - 5
    assert [k.position for k in keys] == list(range(len(keys)))


def test_an_onward_iteration_is_the_epochs_one_after_another_from_a_resume_position():
    s = _sampler(world=2, rank=1, gas=2)
    epochs = []
    for epoch in range(2, 6):
        s.set_epoch(epoch)
        epochs.append(list(s))
    s.set_epoch(2, start=3, onward=True)
    onward = list(itertools.islice(s, sum(map(len, epochs)) - 3))
    assert onward == [key for keys in epochs for key in keys][3:]
    assert {k.epoch for k in onward} == {2, 3, 4, 5} and len(s) == len(epochs[0]) - 3


def test_an_onward_iteration_ends_at_an_empty_epoch():
    s = AtomsBalancedSampler(
        NATOMS[:3], [3], 100, world_size=4, seed=7
    )  # one micro-batch, cut away
    s.set_epoch(0, onward=True)
    assert s.rank_batches(0) == [] and list(s) == []


def test_plans_come_from_the_manifest_without_reading_records(train_data, monkeypatch):
    from foundation.data.lmdb_store import LmdbShard
    from foundation.data.manifest import Manifest
    from foundation.train.config import DataConfig
    from foundation.train.datasets import BatchBuilder
    from foundation.train.loader import build_split_loader

    def refuse(*_):
        raise AssertionError("the sampler opened a record")

    monkeypatch.setattr(LmdbShard, "raw", refuse)
    loader = build_split_loader(
        DataConfig(path=str(train_data), max_atoms=40),
        "train",
        BatchBuilder(4.0),
        rank=0,
        world_size=2,
        grad_accum=1,
        seed=0,
        train=True,
    )
    natoms = Manifest.load(train_data).atoms_per_frame("lmdb", "train")
    plan = loader.sampler.plan(0)
    assert all(natoms[list(b)].sum() <= 40 for b in plan) and len(loader) == len(plan) // 2
