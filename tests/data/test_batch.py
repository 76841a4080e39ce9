"""collate_frames / AtomsBatch: stacking of real frames, labels, the batch graph, dtype and device moves."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from foundation.data.batch import AtomsBatch, collate_frames
from foundation.data.graph import edge_vectors, radius_graph_pbc

from .helpers import full_frame, minimal_frame, real_frames

CUTOFF = 5.0


@pytest.fixture(scope="module")
def frames():
    return real_frames(per_file=6)


def test_shapes_and_label_stacking(frames):
    batch = collate_frames(frames, CUTOFF)
    n, b = sum(f.natoms for f in frames), len(frames)
    assert batch.num_graphs == b and batch.numbers.shape == (n,) and batch.positions.shape == (n, 3)
    assert (
        batch.cell.shape == (b, 3, 3)
        and batch.pbc.shape == (b, 3)
        and batch.pbc.dtype == torch.bool
    )
    assert batch.natoms.tolist() == [f.natoms for f in frames]
    assert torch.equal(batch.batch, torch.repeat_interleave(torch.arange(b), batch.natoms))
    assert (
        batch.positions.dtype
        == batch.shifts.dtype
        == batch.energy.dtype
        == batch.forces.dtype
        == torch.float32
    )
    assert batch.numbers.dtype == batch.edge_index.dtype == torch.long
    assert batch.frame_ids == [f.frame_id for f in frames]
    np.testing.assert_allclose(batch.energy.numpy(), [f.energy for f in frames], rtol=1e-6)
    np.testing.assert_allclose(
        batch.forces.numpy(), np.concatenate([f.forces for f in frames]), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        batch.stress.numpy(), np.stack([f.stress for f in frames]), rtol=1e-6, atol=1e-9
    )
    assert batch.has_stress.all() and batch.noise is None and batch.properties == {}


def test_batch_graph_is_each_frame_graph_with_atom_offsets(frames):
    batch = collate_frames(frames, CUTOFF, dtype=torch.float64)
    edges, offset = [], 0
    for f in frames:
        edge_index, shifts = radius_graph_pbc(
            torch.from_numpy(f.positions),
            torch.from_numpy(f.cell)[None],
            torch.from_numpy(f.pbc)[None],
            torch.zeros(f.natoms, dtype=torch.long),
            CUTOFF,
        )
        edges.append(torch.cat([edge_index.T + offset, shifts.long()], dim=1))
        offset += f.natoms
    assert torch.equal(
        torch.cat([batch.edge_index.T, batch.shifts.long()], dim=1), torch.cat(edges)
    )
    distances = edge_vectors(
        batch.positions, batch.cell, batch.batch, batch.edge_index, batch.shifts
    ).norm(dim=1)
    assert distances.max() < CUTOFF and distances.min() > 0


def test_float32_batch_has_the_float64_edge_set(frames):
    single, double = (
        collate_frames(frames, CUTOFF),
        collate_frames(frames, CUTOFF, dtype=torch.float64),
    )
    assert torch.equal(single.edge_index, double.edge_index) and torch.equal(
        single.shifts.double(), double.shifts
    )


def test_to_float64_casts_floats_only(frames):
    batch = collate_frames(frames, CUTOFF, max_neighbours=8).to(dtype=torch.float64)
    for name in ("positions", "cell", "shifts", "energy", "forces", "stress"):
        assert getattr(batch, name).dtype == torch.float64, name
    assert batch.edge_index.dtype == batch.numbers.dtype == batch.natoms.dtype == torch.long
    assert batch.has_stress.dtype == batch.pbc.dtype == torch.bool
    assert torch.bincount(batch.edge_index[0], minlength=len(batch.numbers)).max() <= 8


def test_labels_absent_or_partial():
    with_stress, without_stress, molecule = full_frame(0), full_frame(1), minimal_frame(2)
    without_stress.stress = None
    batch = collate_frames([with_stress, without_stress], 4.0)
    assert batch.has_stress.tolist() == [True, False]
    assert torch.equal(batch.stress[1], torch.zeros(3, 3)) and batch.energy is not None
    bare = collate_frames([with_stress, molecule], 4.0)
    assert bare.energy is None and bare.forces is None and bare.has_stress.tolist() == [True, False]
    assert collate_frames([molecule], 4.0).stress is None


def test_named_properties_are_stacked_and_missing_ones_named():
    frames = [full_frame(0), full_frame(1)]
    batch = collate_frames(frames, 4.0, properties=["n", "count"])
    np.testing.assert_allclose(
        batch.properties["n"].numpy(), [f.properties["n"] for f in frames], rtol=1e-6
    )
    assert batch.properties["count"].tolist() == [3.0, 3.0]
    with pytest.raises(KeyError, match="molecule-3.*'n'"):
        collate_frames([frames[0], minimal_frame(3)], 4.0, properties=["n"])
    with pytest.raises(ValueError, match="band_edges"):
        collate_frames(frames, 4.0, properties=["band_edges"])


def test_collated_tensors_do_not_alias_the_frames():
    frame = full_frame(0)
    batch = collate_frames([frame], 4.0, dtype=torch.float64)
    batch.positions += 1.0
    batch.forces += 1.0
    assert np.array_equal(frame.positions, full_frame(0).positions) and np.array_equal(
        frame.forces, full_frame(0).forces
    )


def test_dataloader_workers_return_batches():
    frames = [full_frame(k) for k in range(6)]
    loader = torch.utils.data.DataLoader(
        frames, batch_size=3, num_workers=1, collate_fn=partial(collate_frames, cutoff=4.0)
    )
    batches = list(loader)
    assert [type(b) for b in batches] == [AtomsBatch, AtomsBatch] and [
        b.num_graphs for b in batches
    ] == [3, 3]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pin_memory_and_to_cuda():
    batch = collate_frames([full_frame(0), full_frame(1)], 4.0, properties=["n"]).pin_memory()
    assert batch.positions.is_pinned() and batch.properties["n"].is_pinned()
    moved = batch.to("cuda", non_blocking=True)
    assert (
        moved.edge_index.is_cuda
        and moved.properties["n"].is_cuda
        and moved.frame_ids == batch.frame_ids
    )
