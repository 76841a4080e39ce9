"""Batch datasets: LMDB map-style and WebDataset streaming give the same batches (graphs built in the loader
workers); denoising noise is Gaussian, fresh each epoch, exact on resume, and the graph is built on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder, position_noise
from foundation.train.loader import build_split_loader

BUILDER = BatchBuilder(cutoff=4.0, clean=True, noise_std=0.1, seed=3)


def _items(data, container, workers, epoch=0, start=0, rank=0, world=1):
    cfg = DataConfig(
        path=str(data), container=container, max_atoms=40, num_workers=workers, prefetch_factor=2
    )
    loader = build_split_loader(
        cfg, "train", BUILDER, rank=rank, world_size=world, grad_accum=1, seed=5, train=True
    )
    return list(loader.loader(epoch, start))


def _same(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.equal(y), f.name
        elif f.name != "properties":
            assert x == y, f.name


def test_lmdb_and_webdataset_give_the_same_batches(train_data):
    lmdb_items = _items(train_data, "lmdb", workers=1, rank=1, world=2)
    wds_items = _items(train_data, "wds", workers=2, rank=1, world=2)
    assert len(lmdb_items) == len(wds_items) > 2
    for a, b in zip(lmdb_items, wds_items):
        assert (a.epoch, a.position) == (b.epoch, b.position)
        _same(a.clean, b.clean)
        _same(a.noisy, b.noisy)


def test_noise_is_gaussian_fresh_each_epoch_and_reproducible(train_data):
    first, again, later = (
        _items(train_data, "lmdb", 0),
        _items(train_data, "lmdb", 0),
        _items(train_data, "lmdb", 0, 1),
    )
    noise = torch.cat([i.noisy.noise for i in first]).double()
    assert torch.equal(noise, torch.cat([i.noisy.noise for i in again]).double())
    assert abs(float(noise.mean())) < 0.02 and 0.09 < float(noise.std()) < 0.11
    by_frame = {
        fid: n
        for i in first
        for fid, n in zip(i.noisy.frame_ids, torch.split(i.noisy.noise, i.noisy.natoms.tolist()))
    }
    later_frame = {
        fid: n
        for i in later
        for fid, n in zip(i.noisy.frame_ids, torch.split(i.noisy.noise, i.noisy.natoms.tolist()))
    }
    common = set(by_frame) & set(later_frame)
    assert common and all(not torch.equal(by_frame[f], later_frame[f]) for f in common)
    # resume inside an epoch: the same micro-batches, the same noise
    resumed = _items(train_data, "lmdb", 0, start=3)
    for a, b in zip(first[3:], resumed):
        _same(a.noisy, b.noisy)


def test_noisy_batch_is_built_on_noisy_positions(train_data):
    item = _items(train_data, "lmdb", 0)[0]
    frames = open_dataset(train_data, "train", "lmdb")
    key_indices = [
        int(fid.split(":")[1]) for fid in item.noisy.frame_ids
    ]  # frame ids are mptrj:<file index>
    assert len(key_indices) == item.noisy.num_graphs
    clean, noisy = item.clean, item.noisy
    assert torch.allclose(
        noisy.positions.double(), clean.positions.double() + noisy.noise.double(), atol=1e-6
    )
    by_id = {f.frame_id: f for f in frames}
    shaken = [
        dataclasses.replace(by_id[fid], positions=by_id[fid].positions + n.double().numpy())
        for fid, n in zip(noisy.frame_ids, torch.split(noisy.noise, noisy.natoms.tolist()))
    ]
    expected = collate_frames(shaken, 4.0)
    assert torch.equal(expected.edge_index, noisy.edge_index) and torch.equal(
        expected.shifts, noisy.shifts
    )
    assert not torch.equal(clean.edge_index, noisy.edge_index) or not torch.equal(
        clean.positions, noisy.positions
    )


def test_position_noise_depends_only_on_seed_epoch_and_index():
    a = position_noise(4, 0.1, seed=1, epoch=2, index=3)
    assert np.array_equal(a, position_noise(4, 0.1, seed=1, epoch=2, index=3))
    for other in (
        dict(seed=2, epoch=2, index=3),
        dict(seed=1, epoch=3, index=3),
        dict(seed=1, epoch=2, index=4),
    ):
        assert not np.array_equal(a, position_noise(4, 0.1, **other))


def test_position_noise_has_no_rigid_translation():
    noise = position_noise(5, 0.1, seed=0, epoch=0, index=7)
    assert np.allclose(noise.mean(axis=0), 0.0, atol=1e-15)
    assert noise.std() > 0.05  # still noise of about the asked size
    assert np.allclose(
        position_noise(1, 0.1, seed=0, epoch=0, index=1), 0.0
    )  # one atom: only a translation
