"""Graph.pairs: the two directed edges of a pair share their distance-only filters."""

from __future__ import annotations

import numpy as np
import torch

from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.models.base import Graph


def _graph(atoms_list, cutoff: float, max_neighbours=None) -> Graph:
    frames = [
        Frame(
            numbers=a.numbers,
            positions=a.positions,
            cell=np.asarray(a.cell[:]),
            pbc=a.pbc,
            frame_id=str(k),
            structure_id=str(k),
        )
        for k, a in enumerate(atoms_list)
    ]
    batch = collate_frames(
        frames, cutoff=cutoff, max_neighbours=max_neighbours, dtype=torch.float64
    )
    i, j = batch.edge_index
    vectors = (
        batch.positions[j]
        - batch.positions[i]
        + torch.einsum("ek,ekl->el", batch.shifts, batch.cell[batch.batch[i]])
    )
    return Graph.from_vectors(
        batch.numbers,
        batch.batch,
        batch.edge_index,
        batch.shifts,
        vectors,
        batch.num_graphs,
        torch.float64,
    )


def test_each_pair_holds_an_edge_and_its_reverse(triclinic, small_cell, molecule):
    graph = _graph([triclinic, small_cell, molecule], cutoff=5.0)
    first, inverse = graph.pairs
    assert 2 * first.numel() == inverse.numel()  # every edge has its reverse
    assert torch.equal(inverse[first], torch.arange(first.numel()))
    assert torch.bincount(inverse).eq(2).all()
    i, j = graph.edge_index
    partner = torch.full_like(inverse, -1)  # the other edge of each pair
    for pair in range(first.numel()):
        a, b = torch.nonzero(inverse == pair).flatten().tolist()
        partner[a], partner[b] = b, a
    assert torch.equal(i, j[partner]) and torch.equal(graph.shifts, -graph.shifts[partner])
    assert torch.equal(graph.lengths, graph.lengths[partner])  # bit for bit


def test_one_sided_edges_under_max_neighbours(triclinic):
    """With max_neighbours, an edge's reverse may be missing: such an edge is a pair of its own."""
    graph = _graph([triclinic], cutoff=5.0, max_neighbours=5)
    first, inverse = graph.pairs
    assert first.numel() < inverse.numel() and torch.bincount(inverse).max() <= 2
    assert torch.equal(graph.lengths[first][inverse], graph.lengths)
