"""Fixtures of the training tests: one small dataset of real MPtrj frames (LMDB + WebDataset), built once."""

from __future__ import annotations

import pytest

from foundation.train.distributed import init_distributed, shutdown
from tests.train.helpers import make_dataset


@pytest.fixture(scope="session")
def train_data(tmp_path_factory):
    """48 train + 12 val real DFT frames (<= 12 atoms each) in shards of 16, both containers."""
    return make_dataset(tmp_path_factory.mktemp("train-data") / "dataset")


@pytest.fixture(scope="module")
def group():
    """A one-rank process group (gloo on CPU) for a module's engine tests."""
    info = init_distributed("cpu")
    yield info
    shutdown(info)
