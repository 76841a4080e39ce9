"""Batches of frames as flat tensors with their periodic graph: what the loader workers hand to the model."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from torch import Tensor

from foundation.data.graph import radius_graph_pbc
from foundation.data.schema import Frame


@dataclass
class AtomsBatch:
    """B structures with N atoms in all and E directed edges (ASE 'ijS' convention, see foundation.data.graph).

    Labels are None when absent: ``energy`` / ``forces`` need every frame to carry them; ``stress`` is set when at
    least one frame has one, with zeros where ``has_stress`` is False. ``edge_index`` and ``shifts`` are None in a
    batch collated without its graph (``collate_frames(..., graph=False)``) until ``with_graph`` builds it.
    """

    numbers: Tensor  # (N,) long
    positions: Tensor  # (N,3) float
    cell: Tensor  # (B,3,3), rows are lattice vectors
    pbc: Tensor  # (B,3) bool
    batch: Tensor  # (N,) long, structure index of each atom (non-decreasing)
    natoms: Tensor  # (B,) long
    edge_index: Tensor | None  # (2,E) long
    shifts: Tensor | None  # (E,3) float, integer image offsets
    energy: Tensor | None = None  # (B,) total eV
    forces: Tensor | None = None  # (N,3) eV/A
    stress: Tensor | None = None  # (B,3,3) eV/A^3, ASE sign
    has_stress: Tensor | None = None  # (B,) bool
    noise: Tensor | None = None  # (N,3) positional noise added by a denoising transform
    properties: dict[str, Tensor] = field(default_factory=dict)  # named scalar properties (B,)
    frame_ids: list[str] = field(default_factory=list)
    source: Tensor | None = (
        None  # (B,) long: each frame's index in the `sources` it was collated with
    )

    @property
    def num_graphs(self) -> int:
        return int(self.natoms.shape[0])

    def to(
        self,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        non_blocking: bool = False,
    ) -> AtomsBatch:
        """A copy on ``device``; ``dtype`` applies to floating point tensors only (indices and masks keep theirs).
        ``non_blocking`` overlaps the copy with compute when the batch is in pinned memory."""

        def move(t: Tensor) -> Tensor:
            return t.to(
                device=device,
                dtype=dtype if dtype is not None and t.is_floating_point() else None,
                non_blocking=non_blocking,
            )

        return self._map(move)

    def pin_memory(self) -> AtomsBatch:
        """A copy in pinned memory (DataLoader(pin_memory=True) calls this)."""
        return self._map(Tensor.pin_memory)

    def named_tensors(self) -> Iterator[tuple[str, str | None, Tensor]]:
        """(field, property key or None, tensor) of every tensor the batch holds, in field order."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                yield f.name, None, value
            elif f.name == "properties":
                yield from ((f.name, key, t) for key, t in value.items())

    def tensors(self) -> Iterator[Tensor]:
        """Every tensor the batch holds (properties included)."""
        return (t for _, _, t in self.named_tensors())

    def _map(self, fn) -> AtomsBatch:
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                value = fn(value)
            elif f.name == "properties":
                value = {k: fn(v) for k, v in value.items()}
            elif f.name == "frame_ids":
                value = list(value)
            values[f.name] = value
        return AtomsBatch(**values)


def collate_frames(
    frames: Sequence[Frame],
    cutoff: float,
    max_neighbours: int | None = None,
    dtype: torch.dtype = torch.float32,
    properties: Sequence[str] = (),
    device: torch.device | str | None = None,
    sources: Sequence[str] = (),
    graph: bool = True,
) -> AtomsBatch:
    """Stack frames into one batch and build its periodic graph (meant to run inside DataLoader workers).

    The graph is built in float64 and only then cast, so float32 batches have exactly the float64 edge set.
    ``properties`` names scalar entries of ``frame.properties`` to stack (a frame without one is an error).
    ``device``: where the graph is searched and the batch lives (default CPU; a GPU builds large graphs faster).
    ``sources``: the model's data sources (multi-fidelity energy): ``batch.source`` holds each frame's index in it;
    a frame whose source is not among them is an error.
    ``graph=False`` leaves the graph out (edge_index and shifts None) and positions and cell in float64, so that
    ``with_graph`` builds exactly the same graph later, wherever the batch is then (data.graphs: device).
    """
    if not frames:
        raise ValueError("collate_frames needs at least one frame")
    natoms = torch.tensor([f.natoms for f in frames], dtype=torch.long, device=device)
    positions = torch.from_numpy(np.concatenate([f.positions for f in frames])).to(device)
    cell = torch.from_numpy(np.stack([f.cell for f in frames])).to(device)
    pbc = torch.from_numpy(np.stack([f.pbc for f in frames])).to(device)
    batch = torch.repeat_interleave(torch.arange(len(frames), device=device), natoms)

    energy = forces = stress = has_stress = None
    if all(f.energy is not None for f in frames):
        energy = torch.tensor([f.energy for f in frames], dtype=torch.float64)
    if all(f.forces is not None for f in frames):
        forces = torch.from_numpy(np.concatenate([f.forces for f in frames]))
    if any(f.stress is not None for f in frames):
        has_stress = torch.tensor([f.stress is not None for f in frames])
        stress = torch.from_numpy(
            np.stack([f.stress if f.stress is not None else np.zeros((3, 3)) for f in frames])
        )
    props = {
        name: torch.tensor([_scalar_property(f, name) for f in frames], dtype=torch.float64)
        for name in properties
    }

    out = AtomsBatch(
        numbers=torch.from_numpy(np.concatenate([f.numbers for f in frames])).to(device),
        positions=positions,
        cell=cell,
        pbc=pbc,
        batch=batch,
        natoms=natoms,
        edge_index=None,
        shifts=None,
        energy=energy,
        forces=forces,
        stress=stress,
        has_stress=has_stress,
        properties=props,
        frame_ids=[f.frame_id for f in frames],
        source=source_indices(frames, sources, device),
    ).to(device=device)
    if graph:
        return with_graph(out, cutoff, max_neighbours, dtype)
    return dataclasses.replace(out.to(dtype=dtype), positions=positions, cell=cell)


def with_graph(
    batch: AtomsBatch,
    cutoff: float,
    max_neighbours: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> AtomsBatch:
    """The batch with its periodic graph, searched on the batch's device in its positions' precision (float64 from
    ``collate_frames``), and then its floating point tensors cast to ``dtype``: the last step of ``collate_frames``,
    so a graph built later on a GPU is the one a loader worker would have built (radius_graph_pbc gives the same
    edges in the same order on every device)."""
    edge_index, shifts = radius_graph_pbc(
        batch.positions, batch.cell, batch.pbc, batch.batch, cutoff, max_neighbours
    )
    return dataclasses.replace(batch, edge_index=edge_index, shifts=shifts).to(dtype=dtype)


def source_indices(
    frames: Sequence[Frame], sources: Sequence[str], device: torch.device | str | None = None
) -> Tensor | None:
    """(B,) index of each frame's source in `sources` (None when `sources` is empty)."""
    if not sources:
        return None
    index = {name: i for i, name in enumerate(sources)}
    try:
        return torch.tensor([index[f.source] for f in frames], dtype=torch.long, device=device)
    except KeyError as exc:
        frame = next(f for f in frames if f.source not in index)
        raise ValueError(
            f"frame {frame.frame_id!r} has source {exc.args[0]!r}, which is not one of the model's "
            f"sources {list(sources)}"
        ) from None


def _scalar_property(frame: Frame, name: str) -> float:
    if name not in frame.properties:
        raise KeyError(
            f"frame {frame.frame_id!r} has no property {name!r} (it has {sorted(frame.properties)})"
        )
    value = np.asarray(frame.properties[name])
    if value.size != 1 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(
            f"frame {frame.frame_id!r}: property {name!r} is not a numeric scalar: {value!r}"
        )
    return float(value.reshape(()))
