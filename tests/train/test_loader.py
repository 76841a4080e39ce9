"""Training loaders: one loader spans epochs, its workers started once, giving the same micro-batches as one
loader per epoch (LMDB and WebDataset); WebDataset shards stream from URLs: every micro-batch read over a real
HTTP server on 127.0.0.1 (and through a pipe: command) equals the local read, in loader workers."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import threading

import pytest
import torch

from foundation.config import ConfigError
from foundation.data.remote import grant_command_line
from foundation.train.config import DataConfig, SourceConfig, check_sources, load_train_config
from foundation.train.datasets import BatchBuilder
from foundation.train.loader import build_split_loader
from foundation.train.runner import run_training
from tests.http_server import serve
from tests.train.helpers import tiny_config

BUILDER = BatchBuilder(cutoff=4.0, clean=True, noise_std=0.1, seed=3)


def _items(path, split="train", builder=BUILDER, **options):
    cfg = DataConfig(
        path=str(path), container="wds", max_atoms=40, num_workers=2, prefetch_factor=2, **options
    )
    loader = build_split_loader(
        cfg, split, builder, rank=0, world_size=1, grad_accum=1, seed=5, train=split == "train"
    )
    return list(loader.loader(0, 0))


def _same(a, b):
    assert (a.epoch, a.position) == (b.epoch, b.position)
    for batch_a, batch_b in ((a.clean, b.clean), (a.noisy, b.noisy)):
        for f in dataclasses.fields(batch_a):
            x, y = getattr(batch_a, f.name), getattr(batch_b, f.name)
            if isinstance(x, torch.Tensor):
                assert x.equal(y), f.name
            elif f.name != "properties":
                assert x == y, f.name


@dataclasses.dataclass(frozen=True)
class _PidBuilder(BatchBuilder):
    """Marks each batch with the process id of the worker that built it."""

    def __call__(self, key, frames):
        item = super().__call__(key, frames)
        item.clean.properties["pid"] = torch.tensor([os.getpid()])
        return item


@pytest.mark.parametrize("container", ["lmdb", "wds"])
def test_one_loader_spans_epochs_with_its_workers_started_once(train_data, container):
    """From a resume position (epoch 1, micro-batch 2) through three epochs: the same micro-batches as one loader
    per epoch, every one of them built by the same two worker processes."""
    cfg = DataConfig(
        path=str(train_data), container=container, max_atoms=40, num_workers=2, prefetch_factor=2
    )
    split = build_split_loader(
        cfg, "train", _PidBuilder(4.0), rank=0, world_size=1, grad_accum=1, seed=5, train=True
    )
    per_epoch = [
        item for epoch in (1, 2, 3) for item in split.loader(epoch, 2 if epoch == 1 else 0)
    ]
    onward = list(itertools.islice(split.loader(1, 2, onward=True), len(per_epoch)))
    assert [(i.epoch, i.position) for i in onward] == [(i.epoch, i.position) for i in per_epoch]
    assert {i.epoch for i in onward} == {1, 2, 3}
    for a, b in zip(onward, per_epoch):
        assert a.clean.frame_ids == b.clean.frame_ids and a.clean.edge_index.equal(
            b.clean.edge_index
        )
    pids = {int(i.clean.properties["pid"]) for i in onward}
    assert len(pids) == 2 and os.getpid() not in pids


def test_training_reads_over_http_and_pipe_equal_the_local_read(train_data):
    local = _items(train_data)
    assert sum(int(i.clean.natoms.numel()) for i in local) > 20
    with serve(train_data.parent) as url:
        over_http = _items(f"{url}/{train_data.name}")
        shards_over_http = _items(train_data, shard_url_base=f"{url}/{train_data.name}")
    base = f"pipe:cat {train_data}/{{path}}"
    with grant_command_line(
        [base], allow=True
    ):  # as if typed with --allow-pipe: loader workers too
        through_pipe = _items(train_data, shard_url_base=base)
    for items in (over_http, shards_over_http, through_pipe):
        assert len(items) == len(local)
        for a, b in zip(local, items):
            _same(a, b)


_HELD_WHILE_WORKERS_START = threading.Lock()


@dataclasses.dataclass(frozen=True)
class _LockingBuilder(BatchBuilder):
    """Takes a lock of this module before it builds a batch."""

    def __call__(self, key, frames):
        with _HELD_WHILE_WORKERS_START:
            return super().__call__(key, frames)


@pytest.mark.timeout(
    120
)  # a worker that inherited the held lock would wait forever: fail instead of hanging
def test_loader_workers_do_not_inherit_a_lock_the_training_process_holds(train_data):
    """A training process has threads (DeepSpeed, TensorBoard, progress bars), and a lock one of them holds while
    loader workers start must not reach the workers in its held state."""
    with _HELD_WHILE_WORKERS_START:
        items = _items(train_data, builder=_LockingBuilder(**dataclasses.asdict(BUILDER)))
    assert len(items) == len(_items(train_data)) > 0


def test_a_shard_base_is_refused_beside_a_mixture():
    data = DataConfig(
        sources=[SourceConfig(path="http://127.0.0.1:1/a"), SourceConfig(path="b")],
        shard_url_base="http://127.0.0.1:1/shards",
    )
    with pytest.raises(ConfigError, match="each data.sources path"):
        check_sources(data)


def test_a_training_run_over_http_matches_the_local_run(train_data, tmp_path):
    """A real run (3 steps, validation) with data.path an http URL: the same losses as on the local dataset."""

    def run(path, name):
        cfg = load_train_config(
            tiny_config(
                path,
                tmp_path / name,
                data={"container": "wds", "num_workers": 1},
                train={"max_steps": 3, "val_every": 3, "checkpoint_every": 3},
            )
        )
        run_training(cfg)
        return [line for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]

    local = run(str(train_data), "local")
    with serve(train_data.parent) as url:
        remote = run(f"{url}/{train_data.name}", "remote")

    def numbers(lines):  # what the data decides (not timings or memory)
        return [
            {
                k: v
                for k, v in json.loads(x).items()
                if k in ("kind", "step", "lr", "grad_norm", "epoch", "loss")
                or k.endswith(("_loss", "_mae"))
            }
            for x in lines
        ]

    assert (
        numbers(remote) == numbers(local) and len(local) >= 2 and "forces_mae" in numbers(local)[-1]
    )
