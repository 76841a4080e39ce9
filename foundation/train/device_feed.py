"""The device side of the data path: training items reach the run's device one ahead of their step (on CUDA, from
pinned host memory by non-blocking copies on a side stream, so the copy of micro-batch k+1 overlaps the compute
of micro-batch k), and batches that the loader workers sent without their neighbour graph (data.graphs: device)
get it there, just before the forward pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch

from foundation.config import ConfigError
from foundation.data.batch import AtomsBatch, with_graph
from foundation.train.datasets import BatchBuilder, TrainItem

Item = TypeVar("Item")
Pending = TypeVar("Pending")
_END = object()


def graph_place(setting: str, device: torch.device) -> str:
    """Where neighbour graphs are built for ``data.graphs`` = setting on ``device``: "worker" or "device"; auto
    is "device" on CUDA (the GPU search is ~50x a CPU thread's) and "worker" elsewhere."""
    if setting == "auto":
        return "device" if device.type == "cuda" else "worker"
    if setting not in ("worker", "device"):
        raise ConfigError(f"data.graphs must be worker, device or auto, got {setting!r}")
    return setting


def one_ahead(
    items: Iterable[Item], start: Callable[[Item], Pending], finish: Callable[[Pending], Item]
) -> Iterator[Item]:
    """The items in order, each through ``start`` (begin its transfer) and then ``finish`` (wait for it), with
    item k+1 started before item k is handed out, so that its transfer overlaps the work done on item k."""
    source = iter(items)
    first = next(source, _END)
    if first is _END:
        return
    pending = start(first)
    for item in source:
        following = start(item)
        yield finish(pending)
        pending = following
    yield finish(pending)


class DeviceFeed:
    """Moves a run's batches to its device and builds the graphs the loader workers left out (``builder``'s
    cutoff and max_neighbours, the same search and casts as in a worker, so the batches are identical)."""

    def __init__(self, device: torch.device, builder: BatchBuilder):
        self.device, self.builder = device, builder
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def items(self, loader: Iterable[TrainItem]) -> Iterator[TrainItem]:
        """The loader's items in order; on CUDA each already on the device, its copy started while the item
        before it was in use (a side stream, waited on by the compute stream); elsewhere a plain pass-through."""
        if self.stream is None:
            return iter(loader)
        return one_ahead(loader, self._start_copy, self._finish_copy)

    def batch(self, batch: AtomsBatch | None) -> AtomsBatch | None:
        """The batch on the device (no copy when it is there already), with its graph."""
        if batch is None:
            return None
        batch = batch.to(self.device)
        if batch.edge_index is None:
            batch = with_graph(batch, self.builder.cutoff, self.builder.max_neighbours)
        return batch

    def _start_copy(self, item: TrainItem) -> tuple[TrainItem, torch.cuda.Event]:
        with torch.cuda.stream(self.stream):
            clean, noisy = (
                None if b is None else b.to(self.device, non_blocking=True)
                for b in (item.clean, item.noisy)
            )
            return dataclasses.replace(item, clean=clean, noisy=noisy), self.stream.record_event()

    def _finish_copy(self, pending: tuple[TrainItem, torch.cuda.Event]) -> TrainItem:
        moved, copied = pending
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(copied)
        for batch in (moved.clean, moved.noisy):
            # made on the side stream, used (and freed) on the compute stream
            for tensor in batch.tensors() if batch is not None else ():
                tensor.record_stream(compute)
        return moved
