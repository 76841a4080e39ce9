"""Periodic radius graphs in pure torch, batched over many structures, on CPU and GPU.

Convention (ASE's ``neighbor_list('ijS')``): for edge e with i = edge_index[0, e], j = edge_index[1, e],
    vec_e = positions[j] - positions[i] + shifts[e] @ cell[batch[i]],      |vec_e| < cutoff,
both directions of every pair are present, an atom meets its own periodic images (i == j, shift != 0) but not
itself (i == j, shift 0); as in ASE, distinct atoms at the same place are neighbours. Edges come in lexicographic
(i, j, shift) order.

Method (all pairs, per structure): with fractional coordinates f = s_j - s_i + S in the search frame, write the
lattice in its triangular form a0 = (x0, y0, z0), a1 = (0, y1, z1), a2 = (0, 0, z2), so that
|vec|^2 = (x0 f0)^2 + (y0 f0 + y1 f1)^2 + (z0 f0 + z1 f1 + z2 f2)^2. For each pair i <= j the S0 with |f0| within the
cutoff's reach form a range; for each (pair, S0) the sphere's section gives the range of S1; for each (pair, S0, S1)
the roots of a quadratic give the exact run of S2 (runs whose ends lie within rounding of an integer are settled by
the squared length itself). Every S2 of a run is an edge, so nothing is filtered; ranges and runs come out in
lexicographic order, the runs of (i, j) serve (j, i) reversed and negated, and all runs are placed from per-atom
counts: nothing is sorted. Non-periodic axes take S_k = 0; their lattice rows are replaced by an orthonormal
complement of the periodic ones (so molecules may have a zero cell). Structures are processed in chunks of bounded
size (memory O(chunk + edges)), written in place into outputs sized by an estimate of the edge count; structures
with more than ``CELL_LIST_MIN_ATOMS`` atoms use a cell list over sub-cells of the cell instead (time and memory
O(N)).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from foundation.data.pair_search import SearchSpace, all_pairs_search, metric_dist2, owners

# Pairs (i, j) examined at once by the all-pairs search (working memory ~300 bytes per pair): on CPU small enough
# for the cache (and for the allocator to reuse memory), on an accelerator large enough to amortise kernel launches.
MAX_PAIRS_PER_CHUNK = 1 << 15
MAX_PAIRS_PER_CHUNK_ACCELERATOR = 1 << 22
# Structures at least this large use the cell list (all-pairs would cost N^2).
CELL_LIST_MIN_ATOMS = 1024
# Image shifts per atom pair a structure may need (the box the cutoff spans in lattice units); a skewed or nearly
# flat cell whose lattice planes lie far closer than the cutoff would need millions and exhaust memory.
MAX_IMAGE_SHIFTS = 100_000


def radius_graph_pbc(positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor, cutoff: float,
                     max_neighbours: int | None = None) -> tuple[Tensor, Tensor]:
    """All (i, j, shift) within ``cutoff`` of a batch of (periodic) structures, in ASE's 'ijS' convention.

    positions (N,3); cell (B,3,3), rows are lattice vectors; pbc (B,3) bool; batch (N,) long, the structure index of
    each atom, non-decreasing. Returns edge_index (2,E) long and shifts (E,3) in positions' dtype with
    integer values, such that vec = positions[j] - positions[i] + shifts @ cell[batch[i]] has |vec| < cutoff; like
    ASE, an atom is never its own neighbour with a zero shift (its periodic images are), while two distinct atoms at
    the same place are neighbours at distance 0. ``max_neighbours`` keeps the nearest per atom i; ties are
    broken by j, then by shift (lexicographic), so the result is deterministic. Edges come in lexicographic
    (i, j, shift) order, the same on every device and for either search. Distances are evaluated in the
    positions' dtype: pass float64 to get ASE's edge set exactly.
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if max_neighbours is not None and max_neighbours < 1:
        raise ValueError(f"max_neighbours must be >= 1 or None, got {max_neighbours}")
    if not positions.is_floating_point():
        raise TypeError(f"positions must be a floating point tensor, got {positions.dtype}")
    with torch.no_grad():
        pos = positions.detach()
        cell = cell.detach().to(device=pos.device, dtype=pos.dtype).reshape(-1, 3, 3)
        pbc = pbc.detach().to(device=pos.device, dtype=torch.bool).reshape(-1, 3)
        batch = batch.detach().to(device=pos.device, dtype=torch.long)
        _check_inputs(pos, cell, pbc, batch)
        frame, faces, volume = _search_frame(cell, pbc)
        inv = faces.transpose(1, 2) / volume[:, None, None]  # the columns of the inverse: the faces over the volume
        reach = cutoff * torch.linalg.vector_norm(inv, dim=1) * (1 + 64 * torch.finfo(pos.dtype).eps)
        _check_image_budget(reach, pbc, cell, cutoff)
        space = SearchSpace(pos, inv, batch, reach, frame, faces, volume, pbc, bool((~pbc).any()), cutoff)
        natoms = torch.bincount(batch, minlength=cell.shape[0])
        offsets = torch.cumsum(natoms, 0) - natoms
        # Every atom's edges come from one part (its structure's chunk, or its structure's cell list), in
        # lexicographic (i, j, S) order, so parts are capped independently and laid one after another in order of i.
        max_pairs = MAX_PAIRS_PER_CHUNK if pos.device.type == "cpu" else MAX_PAIRS_PER_CHUNK_ACCELERATOR
        parts = [(int(chunk[0]), chunk) for chunk in _pair_chunks(natoms, max_pairs)]
        parts += [(b, None) for b in torch.nonzero(natoms >= CELL_LIST_MIN_ATOMS).flatten().tolist()]
        edges = _Edges(pos, _expected_edges(natoms, volume, pbc, cutoff))
        capped = max_neighbours is not None

        def fresh(n: int) -> tuple[Tensor, Tensor]:  # parts to be capped first
            return torch.empty(2, n, dtype=torch.long, device=pos.device), pos.new_empty(n, 3)

        for first, chunk in sorted(parts, key=lambda part: part[0]):
            if chunk is None:
                part = _cell_list_search(space, first, int(offsets[first]), int(natoms[first]), max_pairs)
            else:
                part = all_pairs_search(space, chunk, natoms, offsets, fresh if capped else edges.reserve, capped)
            if capped:
                part = _nearest(*part, max_neighbours)
            if chunk is None or capped:
                rows, shifts = edges.reserve(part[1].shape[0])
                rows.copy_(part[0])
                shifts.copy_(part[1])
        return edges.result()


def _expected_edges(natoms: Tensor, volume: Tensor, pbc: Tensor, cutoff: float) -> int:
    """About how many edges a batch has: n^2 (4/3 pi cutoff^3) / volume per periodic structure (a uniform density;
    within a few % on real frames at 5-6 A), n (n - 1) for the others."""
    n = natoms.to(volume.dtype)
    uniform = n * n * (4 / 3 * math.pi * cutoff ** 3) / volume.abs()
    return int(torch.where(pbc.all(dim=1), uniform, n * (n - 1)).sum()) if n.numel() else 0


class _Edges:
    """The edges of a batch, written part after part in order into buffers sized by an estimate of their number
    (grown when it falls short), so that parts need no concatenation."""

    def __init__(self, like: Tensor, expected: int):
        self.capacity, self.size = max(int(expected * 1.05), 16), 0
        self.index = torch.empty(2, self.capacity, dtype=torch.long, device=like.device)
        self.shifts = like.new_empty(self.capacity, 3)

    def reserve(self, n: int) -> tuple[Tensor, Tensor]:
        """Room for the next n edges: views (2,n) of edge_index and (n,3) of shifts, to be written."""
        end = self.size + n
        if end > self.capacity:
            self.capacity = max(end, int(self.capacity * 1.25))
            index, shifts = self.index.new_empty(2, self.capacity), self.shifts.new_empty(self.capacity, 3)
            index[:, :self.size] = self.index[:, :self.size]
            shifts[:self.size] = self.shifts[:self.size]
            self.index, self.shifts = index, shifts
        start, self.size = self.size, end
        return self.index[:, start:end], self.shifts[start:end]

    def result(self) -> tuple[Tensor, Tensor]:
        """edge_index (2,E), contiguous, and shifts (E,3); views of the buffers unless they are far too large."""
        size, spare = self.size, self.capacity - self.size
        if not spare:
            return self.index, self.shifts
        if spare * 4 > size or spare * 64 < size:  # a poor estimate, or too little room to move row j in few steps
            shifts = self.shifts[:size].clone() if spare * 4 > size else self.shifts[:size]
            return self.index[:, :size].contiguous(), shifts
        flat = self.index.view(-1)
        for start in range(0, size, spare):  # row j moves down by `spare`, block by block: no block overlaps its source
            stop = min(start + spare, size)
            flat[size + start:size + stop].copy_(flat[self.capacity + start:self.capacity + stop])
        return flat[:2 * size].view(2, size), self.shifts[:size]


def edge_vectors(positions: Tensor, cell: Tensor, batch: Tensor, edge_index: Tensor, shifts: Tensor) -> Tensor:
    """Edge vectors (E,3) = positions[j] - positions[i] + shifts @ cell[batch[i]], differentiable in positions and
    cell (so a strain applied to both before this call gives stress by autograd)."""
    i, j = edge_index[0], edge_index[1]
    offset = torch.bmm(shifts.to(cell.dtype).unsqueeze(1), cell[batch[i]]).squeeze(1)
    return positions[j] - positions[i] + offset


def _check_inputs(pos: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> None:
    n, b = pos.shape[0], cell.shape[0]
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {tuple(pos.shape)}")
    if batch.shape != (n,):
        raise ValueError(f"batch must have shape ({n},), got {tuple(batch.shape)}")
    if pbc.shape[0] != b:
        raise ValueError(f"cell has {b} structures but pbc has {pbc.shape[0]}")
    if n and (batch.min() < 0 or batch.max() >= b or (batch[1:] < batch[:-1]).any()):
        raise ValueError(f"batch must be non-decreasing structure indices in [0, {b}), got {batch.tolist()[:20]}...")


def _check_image_budget(reach: Tensor, pbc: Tensor, cell: Tensor, cutoff: float) -> None:
    shifts = torch.where(pbc, 2 * torch.floor(reach) + 3, torch.ones_like(reach)).prod(dim=1)
    if shifts.numel() and float(shifts.max()) > MAX_IMAGE_SHIFTS:
        b = int(torch.argmax(shifts))
        raise ValueError(f"structure {b}: cell too thin for the cutoff: {cutoff:g} A spans up to {float(shifts[b]):.3g} "
                         f"image shifts per atom pair (more than {MAX_IMAGE_SHIFTS}); cell {cell[b].tolist()}")


def _search_frame(cell: Tensor, pbc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The cell with each non-periodic row replaced by a unit vector orthogonal to the periodic rows and to each
    other, so fractional coordinates exist for molecules, slabs and wires (their shifts stay 0 on those axes); with
    its faces (row k: a_k+1 x a_k+2) and signed volume (closed forms: no batched linear algebra for 3x3 matrices)."""
    frame = cell.clone()
    partial = torch.nonzero(~pbc.all(dim=1)).flatten()
    if partial.numel():
        periodic = torch.where(pbc[partial, :, None], cell[partial], torch.zeros_like(cell[partial]))
        _, _, vh = torch.linalg.svd(periodic)  # rows of vh beyond the rank span the complement
        rank = pbc[partial].sum(dim=1, keepdim=True)
        slot = (rank + torch.cumsum((~pbc[partial]).long(), dim=1) - 1).clamp(max=2)
        complement = torch.gather(vh, 1, slot.unsqueeze(-1).expand(-1, -1, 3))
        frame[partial] = torch.where(pbc[partial, :, None], periodic, complement)
    faces = torch.linalg.cross(frame.roll(-1, dims=1), frame.roll(-2, dims=1))
    volume = (frame[:, 0] * faces[:, 0]).sum(dim=1)
    lengths = torch.linalg.vector_norm(frame, dim=2).prod(dim=1)
    bad = torch.nonzero(volume.abs() <= 1e-9 * lengths.clamp(min=1e-30)).flatten()
    if bad.numel():
        b = int(bad[0])
        raise ValueError(f"structure {b} has a degenerate cell along its periodic axes {pbc[b].tolist()}: "
                         f"{cell[b].tolist()}")
    return frame, faces, volume


def _pair_chunks(natoms: Tensor, max_pairs: int) -> list[Tensor]:
    """The structures searched all-pairs, grouped in consecutive chunks of about ``max_pairs`` pairs (as many as the
    total rounds to, of even sizes: a small remainder costs no chunk of its own); no chunk straddles a cell-list
    structure, so chunks and cell lists hold disjoint, ordered ranges of atoms."""
    big = natoms >= CELL_LIST_MIN_ATOMS
    cost = torch.where(big, torch.zeros_like(natoms), natoms * natoms)
    structs = torch.nonzero(cost > 0).flatten()
    if not structs.numel():
        return []
    cost = cost[structs]
    total = int(cost.sum())
    step = -(-total // max(1, round(total / max_pairs)))
    chunk_of = torch.div(torch.cumsum(cost, 0) - cost, step, rounding_mode="floor")
    chunk_of = chunk_of * (natoms.numel() + 1) + torch.cumsum(big, 0).index_select(0, structs)
    sizes = torch.unique_consecutive(chunk_of, return_counts=True)[1]
    return list(torch.split(structs, sizes.tolist()))


def _ranks(count: Tensor) -> tuple[Tensor, Tensor]:
    """For counts c_0, c_1, ...: the owner o and the rank r < c_o of each of their sum(count) items."""
    owner, bounds = owners(count)
    return owner, torch.arange(owner.numel(), device=count.device) - bounds.index_select(0, owner)


def _cell_list_search(space: SearchSpace, b: int, start: int, n: int, max_pairs: int):
    """Edges of one large structure by a cell list: atoms binned into sub-cells of the (search) cell about
    cutoff/2 wide along each face normal; each atom i visits the sub-cells its cutoff box can reach. Atoms i are
    taken in blocks (~max_pairs / 64 at once), so the working memory stays bounded for any size."""
    s = torch.stack([column[start:start + n] for column in space.frac_columns], dim=1)
    periodic, r = space.pbc[b], space.reach[b]
    wrap = torch.where(periodic, torch.floor(s), torch.zeros_like(s))
    s = s - wrap
    rounded_up = periodic & (s >= 1)  # x - floor(x) can round to 1.0; keep wrapped coordinates in [0, 1)
    wrap, s = wrap + rounded_up, torch.where(rounded_up, s - 1, s)
    metric = space.frame[b] @ space.frame[b].T
    g6 = metric[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]] * s.new_tensor([1, 1, 1, 2, 2, 2])
    lo_s, hi_s = s.min(dim=0).values, s.max(dim=0).values
    # Non-periodic axes: bins cover the atoms' extent; periodic axes: the unit interval.
    origin = torch.where(periodic, torch.zeros_like(lo_s), lo_s)
    span = torch.where(periodic, torch.ones_like(hi_s), (hi_s - lo_s).clamp(min=1e-12))
    nbins = torch.clamp(torch.floor(span / (r / 2)), min=1).long()
    nbins = torch.minimum(nbins, torch.full_like(nbins, 2 * round(n ** (1 / 3))))  # bounds empty bins (vacuum)
    width = span / nbins
    cell_of = torch.minimum(torch.floor((s - origin) / width).long(), nbins - 1)
    order = torch.argsort(_flat_bin(cell_of, nbins), stable=True)
    counts = torch.bincount(_flat_bin(cell_of, nbins), minlength=int(nbins.prod()))
    first = torch.cumsum(counts, 0) - counts
    columns = tuple(s.T.contiguous())
    parts = []
    block = max(1, max_pairs // 64)
    for begin in range(0, n, block):
        si = s[begin:begin + block]
        # Per atom i, the range of (unwrapped) bin indices its cutoff box can reach on each axis.
        lo = torch.floor((si - r - origin) / width).long()
        hi = torch.floor((si + r - origin) / width).long()
        lo = torch.where(periodic, lo, lo.clamp(min=0))
        hi = torch.where(periodic, hi, torch.minimum(hi, nbins - 1))
        size = (hi - lo + 1).clamp(min=0)
        atom, k = _ranks(size.prod(dim=1))
        # k -> the visited bin (u0, u1, u2) of the atom's box, last axis fastest; columns, not rows, are gathered
        size1, size2 = size[:, 1].index_select(0, atom), size[:, 2].index_select(0, atom)
        q = torch.div(k, size2, rounding_mode="floor")
        q1 = torch.div(q, size1, rounding_mode="floor")
        u = (lo[:, 0].index_select(0, atom) + q1, lo[:, 1].index_select(0, atom) + q - q1 * size1,
             lo[:, 2].index_select(0, atom) + k - q * size2)
        images = [torch.div(u_k, nbins[axis], rounding_mode="floor") for axis, u_k in enumerate(u)]
        wrapped = [u_k - image_k * nbins[axis] for axis, (u_k, image_k) in enumerate(zip(u, images))]
        target = (wrapped[0] * nbins[1] + wrapped[1]) * nbins[2] + wrapped[2]
        visit, m = _ranks(counts.index_select(0, target))
        i_local = atom.index_select(0, visit) + begin
        j_local = order.index_select(0, first.index_select(0, target).index_select(0, visit) + m)
        images = [image_k.index_select(0, visit) for image_k in images]
        f = torch.stack([columns[axis].index_select(0, j_local) - columns[axis].index_select(0, i_local) + images[axis]
                         for axis in range(3)], dim=1)
        dist2 = metric_dist2(f, g6)
        kept = torch.nonzero((dist2 < space.cutoff ** 2) & ((dist2 > 0) | (i_local != j_local))).squeeze(1)
        i_local, j_local = i_local.index_select(0, kept), j_local.index_select(0, kept)
        image = torch.stack([image_k.index_select(0, kept) for image_k in images], dim=1)
        dist2 = dist2.index_select(0, kept)
        lexicographic = _lexicographic_order(i_local, j_local, image)
        parts.append((i_local.index_select(0, lexicographic), j_local.index_select(0, lexicographic),
                      image.index_select(0, lexicographic), dist2.index_select(0, lexicographic)))
    i_local, j_local, image, dist2 = (torch.cat(column) for column in zip(*parts))
    shifts = image.to(s.dtype) + wrap.index_select(0, i_local) - wrap.index_select(0, j_local)
    return torch.stack([i_local + start, j_local + start]), shifts, dist2


def _lexicographic_order(i: Tensor, j: Tensor, image: Tensor) -> Tensor:
    """The permutation sorting edges by (i, j, S0, S1, S2)."""
    if not i.numel():
        return i
    span = int(image.abs().max()) * 2 + 1
    low, atoms = int(torch.minimum(i.min(), j.min())), int(torch.maximum(i.max(), j.max())) + 1
    atoms -= low
    if atoms * atoms * span ** 3 < 2 ** 62:
        key = (i - low) * atoms + (j - low)
        for axis in range(3):
            key = key * span + (image[:, axis] + span // 2)
        return torch.sort(key).indices
    order = torch.arange(i.numel(), device=i.device)
    for column in (image[:, 2], image[:, 1], image[:, 0], j, i):
        order = order.index_select(0, torch.sort(column.index_select(0, order), stable=True).indices)
    return order



def _flat_bin(index: Tensor, nbins: Tensor) -> Tensor:
    return (index[:, 0] * nbins[1] + index[:, 1]) * nbins[2] + index[:, 2]


def _nearest(edge_index: Tensor, shifts: Tensor, dist2: Tensor, max_neighbours: int) -> tuple[Tensor, Tensor]:
    """Per atom i, the max_neighbours nearest edges; edges arrive in (i, j, shift) lexicographic order, so stable sorts
    by distance then by i break ties by j then shift."""
    i = edge_index[0]
    by_dist = torch.sort(dist2, stable=True).indices
    order = by_dist.index_select(0, torch.sort(i.index_select(0, by_dist), stable=True).indices)
    sorted_i = i.index_select(0, order)
    new_atom = torch.ones_like(sorted_i, dtype=torch.bool)
    new_atom[1:] = sorted_i[1:] != sorted_i[:-1]
    position = torch.arange(i.numel(), device=i.device)
    group_start = torch.cummax(torch.where(new_atom, position, torch.zeros_like(position)), dim=0).values
    keep = torch.zeros_like(i, dtype=torch.bool)
    keep[order[position - group_start < max_neighbours]] = True
    keep = torch.nonzero(keep).squeeze(1)
    return edge_index.index_select(1, keep), shifts.index_select(0, keep)
