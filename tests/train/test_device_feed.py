"""The device side of the data path: graphs built in the training process (data.graphs: device) equal the loader
workers' ones, edge for edge, with the same loss and the same training metrics; items moved one ahead come in
the loader's order, across epochs and from a resumed position; on CUDA the moved items equal the host ones."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch

from foundation.config import ConfigError
from foundation.data import graph
from foundation.data.batch import with_graph
from foundation.models import build_potential
from foundation.train.config import DataConfig, ObjectiveConfig, load_train_config
from foundation.train.datasets import BatchBuilder
from foundation.train.device_feed import DeviceFeed, graph_place, one_ahead
from foundation.train.loader import build_split_loader
from foundation.train.objectives import TERMS, Objective
from foundation.train.runner import run_training
from foundation.train.sampler import MicroBatch
from tests.train.helpers import TINY_MODEL, assert_same_batch, real_frames, tiny_config

CPU = torch.device("cpu")


def _frames_with_a_cell_list_structure():
    """Real MPtrj frames and a supercell of one of them large enough for radius_graph_pbc's cell list."""
    frames = real_frames(5)
    unit = frames[0]
    reps = 1
    while unit.natoms * reps**3 < graph.CELL_LIST_MIN_ATOMS:
        reps += 1
    shifts = np.array(list(itertools.product(range(reps), repeat=3)), dtype=np.float64)
    supercell = dataclasses.replace(
        unit,
        frame_id="supercell",
        numbers=np.tile(unit.numbers, reps**3),
        positions=np.concatenate([unit.positions + s @ unit.cell for s in shifts]),
        cell=unit.cell * reps,
        forces=np.tile(unit.forces, (reps**3, 1)),
        energy=unit.energy * reps**3,
    )
    assert supercell.natoms >= graph.CELL_LIST_MIN_ATOMS
    return frames + [supercell]


@pytest.mark.parametrize("max_neighbours", [None, 12])
def test_device_graphs_equal_worker_graphs_and_give_the_same_loss(max_neighbours):
    frames = _frames_with_a_cell_list_structure()
    key = MicroBatch(epoch=2, position=0, indices=tuple(range(len(frames))))
    built = BatchBuilder(5.0, max_neighbours, noise_std=0.1, seed=4)
    in_worker = built(key, frames)
    left_out = dataclasses.replace(built, build_graph=False)(key, frames)
    assert left_out.clean.edge_index is None and left_out.noisy.shifts is None
    assert left_out.clean.positions.dtype == torch.float64  # the graph is searched in float64
    feed = DeviceFeed(CPU, dataclasses.replace(built, build_graph=False))
    model = build_potential(
        {**TINY_MODEL, "heads": {**TINY_MODEL["heads"], "denoise": "derivative"}}
    ).train()
    objective = Objective(ObjectiveConfig(stress_weight=10.0, denoise_weight=1.0, noise_std=0.1))
    clean_out, noisy_out = objective.outputs(model.outputs)

    def through_model(item):
        clean, noisy = feed.batch(item.clean), feed.batch(item.noisy)
        errors = objective.errors(model(clean, compute=clean_out), clean)
        errors.update(objective.errors(model(noisy, compute=noisy_out), noisy, noisy=True))
        return clean, noisy, objective.loss(errors, objective.counts(clean, noisy))

    worker_clean, worker_noisy, (worker_loss, worker_terms) = through_model(in_worker)
    clean, noisy, (loss, terms) = through_model(left_out)
    assert_same_batch(
        clean, worker_clean
    )  # identical edges in identical order, and every other tensor
    assert_same_batch(noisy, worker_noisy)
    assert int((clean.batch == len(frames) - 1).sum()) >= graph.CELL_LIST_MIN_ATOMS
    # the noisy copy's graph is the graph of its own positions
    assert not torch.equal(noisy.positions, clean.positions)
    assert (
        not torch.equal(noisy.shifts, clean.shifts)
        or noisy.edge_index.shape != clean.edge_index.shape
    )
    assert torch.isclose(loss, worker_loss, rtol=1e-6, atol=0)
    assert torch.allclose(terms, worker_terms, rtol=1e-6, atol=0)


def test_graph_place_follows_the_device():
    assert graph_place("auto", torch.device("cuda", 0)) == "device"
    assert graph_place("auto", CPU) == "worker"
    assert graph_place("device", CPU) == "device" and graph_place("worker", CPU) == "worker"
    with pytest.raises(ConfigError, match="data.graphs"):
        graph_place("gpu", CPU)
    with pytest.raises(ConfigError, match="graphs"):
        load_train_config(tiny_config("data", "run"), ["data.graphs=gpu"])


def _loader(train_data, workers=1):
    cfg = DataConfig(path=str(train_data), max_atoms=40, num_workers=workers, prefetch_factor=2)
    builder = BatchBuilder(4.0, noise_std=0.1, seed=3, build_graph=False)
    return build_split_loader(
        cfg, "train", builder, rank=0, world_size=1, grad_accum=1, seed=5, train=True
    )


def _keys(items):
    return [(i.epoch, i.position, tuple(i.clean.frame_ids)) for i in items]


def test_one_ahead_keeps_the_order_across_epochs_and_from_a_resumed_position(train_data):
    loader = _loader(train_data)
    per_epoch = len(loader.sampler.rank_batches(0))
    calls = []

    def start(item):
        calls.append(("start", item.epoch, item.position))
        return item

    def finish(item):
        calls.append(("finish", item.epoch, item.position))
        return item

    def plan(
        epoch, position
    ):  # from (epoch, position) to the end of the next epoch, epoch by epoch
        yield from loader.loader(epoch, position)
        yield from loader.loader(epoch + 1)

    for epoch, position in ((0, 0), (1, per_epoch - 2)):  # a fresh start, a resume near the end
        expected = _keys(plan(epoch, position))
        calls.clear()
        # the run's one loader over every epoch from there, as the trainer reads it
        run_loader = loader.loader(epoch, position, onward=True)
        ahead = list(one_ahead(itertools.islice(run_loader, len(expected)), start, finish))
        assert _keys(ahead) == expected
        assert ahead[0].epoch == epoch and ahead[0].position == position
        assert {i.epoch for i in ahead} == {epoch, epoch + 1}
        # item k+1 is started before item k is handed out
        for k, item in enumerate(ahead[:-1]):
            after = ahead[k + 1]
            assert calls.index(("start", after.epoch, after.position)) < calls.index(
                ("finish", item.epoch, item.position)
            )
    assert list(one_ahead([], start, finish)) == []


def test_on_the_cpu_the_feed_passes_items_through(train_data):
    loader = _loader(train_data, workers=0)
    feed = DeviceFeed(CPU, BatchBuilder(4.0, build_graph=False))
    items = list(loader.loader(0))
    through = list(feed.items(items))
    assert all(a is b for a, b in zip(through, items)) and len(through) == len(items)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_items_arrive_one_ahead_and_equal_the_host_ones(train_data):
    """Pinned items copied on the side stream, graphs built on the GPU: the batches of the CPU, in order."""
    device = torch.device("cuda", 0)
    loader = _loader(train_data)
    loader.pin_memory = True
    builder = loader.dataset.builder
    feed = DeviceFeed(device, builder)
    host = list(loader.loader(0))
    moved = list(feed.items(loader.loader(0)))
    assert _keys(moved) == _keys(host)
    for ours, theirs in zip(moved, host):
        for name in ("clean", "noisy"):
            on_gpu = feed.batch(getattr(ours, name))
            assert on_gpu.positions.device == device and on_gpu.edge_index.device == device
            on_cpu = with_graph(getattr(theirs, name), builder.cutoff, builder.max_neighbours)
            assert_same_batch(on_gpu.to(CPU), on_cpu)


def _metrics(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    keep = ("loss", *(f"{t}_loss" for t in TERMS), *(f"{t}_mae" for t in TERMS))
    return [
        (e["kind"], e["step"], {k: e[k] for k in keep if k in e})
        for e in map(json.loads, lines)
        if e.get("kind") in ("train", "val")
    ]


def test_a_run_with_device_graphs_gives_the_metrics_of_a_run_with_worker_graphs(
    train_data, tmp_path
):
    """E/F/S and denoising (clean and noisy batches), training and validation, over an epoch boundary."""
    model = {**TINY_MODEL, "heads": {**TINY_MODEL["heads"], "denoise": "derivative"}}
    runs = {}
    for graphs in ("worker", "device"):
        cfg = tiny_config(
            train_data,
            tmp_path / graphs,
            model=model,
            data={"num_workers": 1, "graphs": graphs},
            objective={"denoise_weight": 1.0},
            train={"max_steps": 12, "val_every": 6, "checkpoint_every": 12},
        )
        summary = run_training(load_train_config(cfg))
        assert summary["epoch"] >= 1  # crossed an epoch boundary
        log = (tmp_path / graphs / "train.log").read_text()
        assert f"(data.graphs: {graphs})" in log
        runs[graphs] = _metrics(tmp_path / graphs)
    assert len(runs["worker"]) == len(runs["device"]) > 0
    for (kind, step, ours), (kind2, step2, theirs) in zip(runs["device"], runs["worker"]):
        assert (kind, step, ours.keys()) == (kind2, step2, theirs.keys())
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-6, abs=0), (kind, step, key)
