"""A micro-batch crosses from a loader worker to the training process in one shared buffer per batch: bit for bit
the batch the worker built (every field, dtype and shape, labels that are absent stay absent)."""

from __future__ import annotations

import pickle

import torch

from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder
from foundation.train.loader import build_split_loader
from tests.train.helpers import assert_same_batch

BUILDER = BatchBuilder(cutoff=4.0, clean=True, noise_std=0.1, seed=3)


def _items(data, workers: int):
    cfg = DataConfig(path=str(data), max_atoms=40, num_workers=workers, prefetch_factor=2)
    split = build_split_loader(
        cfg, "train", BUILDER, rank=0, world_size=1, grad_accum=1, seed=5, train=True
    )
    return list(split.loader(1))


def test_a_pickled_item_is_the_same_batch_in_one_buffer_per_batch(train_data):
    item = _items(train_data, 0)[0]
    item.clean.properties["gap"] = torch.arange(item.clean.num_graphs, dtype=torch.float64)
    item.clean.stress = None  # an absent label stays absent
    copy = pickle.loads(pickle.dumps(item))
    assert (copy.epoch, copy.position) == (item.epoch, item.position)
    for batch, packed in ((item.clean, copy.clean), (item.noisy, copy.noisy)):
        assert_same_batch(batch, packed)
        bases = {
            t.untyped_storage().data_ptr()
            for t in [*packed.properties.values()]
            + [v for v in vars(packed).values() if isinstance(v, torch.Tensor)]
        }
        assert len(bases) == 1
    assert copy.clean.stress is None and copy.noisy.stress is not None


def test_items_from_loader_workers_equal_those_built_in_process(train_data):
    here, there = _items(train_data, 0), _items(train_data, 2)
    assert len(here) == len(there) > 2
    for a, b in zip(here, there):
        assert (a.epoch, a.position) == (b.epoch, b.position)
        assert_same_batch(a.clean, b.clean)
        assert_same_batch(a.noisy, b.noisy)
