"""Periodic radius graphs in pure torch, batched over many structures, on CPU and GPU.

Convention (ASE's ``neighbor_list('ijS')``): for edge e with i = edge_index[0, e], j = edge_index[1, e],
    vec_e = positions[j] - positions[i] + shifts[e] @ cell[batch[i]],      0 < |vec_e| < cutoff,
both directions of every pair are present, and an atom meets its own periodic images (i == j, shift != 0).

Method: every atom is wrapped into its cell (fractional coordinates in [0, 1) on periodic axes). For a pair (i, j)
of one structure, an image shift S can only give |vec| < cutoff if on every axis k the fractional component
|s_j - s_i + S_k| <= cutoff / d_k, where d_k is the distance between the cell faces spanned by the other two lattice
vectors. That bounds S to a small box per pair (usually 1-2 values per axis), so candidates are only ~2x the edges,
also when the cutoff exceeds the cell (many images) and for skewed cells. Non-periodic axes take S_k = 0; their
lattice rows are replaced by an orthonormal complement of the periodic ones (so molecules may have a zero cell).
Structures are processed all-pairs in chunks of bounded size (memory O(chunk + edges)); structures with more
than ``CELL_LIST_MIN_ATOMS`` atoms use a cell list over sub-cells of the cell instead (time and memory O(N)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

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
        space = _Space(pos, inv, batch, reach, frame, faces, volume, pbc, bool((~pbc).any()), cutoff)
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
                part = _all_pairs_search(space, chunk, natoms, offsets, fresh if capped else edges.reserve, capped)
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
            return self.index[:, :size].contiguous(), self.shifts[:size].clone() if spare * 4 > size else self.shifts[:size]
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


# Columns of _Space.constants, per atom: in the frame where the lattice rows are triangular, a0 = (x0, y0, z0),
# a1 = (0, y1, z1), a2 = (0, 0, z2), |f0 a0 + f1 a1 + f2 a2|^2 = (x0 f0)^2 + (y0 f0 + y1 f1)^2 + (z0 f0 + z1 f1 + z2 f2)^2
# for fractional coordinates f. Per atom with fractional coordinates (f0, f1, f2): f0, f0 -+ reach0 (the S0 range
# bounds of its pairs), t1 = f1 + ey f0 and t2 = f2 + kz0 f0 + kz f1 (pair differences of which are the centres of
# the S1 and S2 ranges); of its structure: ey = y0 / y1, kz0 = z0 / z2, kz = z1 / z2, cy = (cutoff / y1)^2,
# xy = (x0 / y1)^2, rr = (y1 / z2)^2 (see _all_pairs_search).
_F0, _LOW0, _HIGH0, _T1, _T2, _EY, _KZ0, _KZ, _CY, _XY, _RR = range(11)


@dataclass
class _Space:
    """What the searches share: per atom the fractional coordinates in the search frame (not wrapped) as columns and
    the constants above, its structure; per structure the reach (the cutoff in fractional units per axis, (B,3)),
    the search frame (B,3,3), the triangular frame (B,6: x0, y0, y1, z0, z1, z2), the metric (B,6, see _dist2), pbc;
    the cutoff, and rounding margins."""

    positions: Tensor
    inverse: Tensor  # of the search frame
    batch: Tensor
    reach: Tensor
    frame: Tensor
    faces: Tensor  # row k: a_k+1 x a_k+2
    volume: Tensor  # signed
    pbc: Tensor
    partial: bool  # some structure has a non-periodic axis
    cutoff: float

    def __post_init__(self) -> None:
        # Columns, not rows: gathers with sorted indices from 1-d tensors are several times faster than row gathers.
        per_atom = [column.index_select(0, self.batch) for column in self.inverse.reshape(-1, 9).T]
        p0, p1, p2 = self.positions.T
        self.frac_columns = tuple(torch.addcmul(torch.addcmul(p0 * per_atom[k], p1, per_atom[3 + k]), p2, per_atom[6 + k])
                                  for k in range(3))
        # The triangular frame: e_z along a2, e_y in the plane of a1 and a2 (cross products, not differences, where
        # Gram-Schmidt would cancel).
        a0, a1, a2 = self.frame.unbind(1)
        z2 = torch.linalg.vector_norm(a2, dim=1)
        z1, z0 = (a1 * a2).sum(dim=1) / z2, (a0 * a2).sum(dim=1) / z2
        face0 = torch.linalg.vector_norm(self.faces[:, 0], dim=1)  # |a1 x a2|
        y1 = face0 / z2
        y0 = -(self.faces[:, 0] * self.faces[:, 1]).sum(dim=1) / (z2 * face0)  # (a2 x a1).(a2 x a0) / (z2 |a1 x a2|)
        x0 = self.volume.abs() / face0
        self.triangular = torch.stack([x0, y0, y1, z0, z1, z2], dim=1)
        reach0, ey, kz0, kz, cy, xy, rr = (column.index_select(0, self.batch) for column in (
            self.reach[:, 0], y0 / y1, z0 / z2, z1 / z2, (self.cutoff / y1) ** 2, (x0 / y1) ** 2, (y1 / z2) ** 2))
        f0, f1, f2 = self.frac_columns
        self.constants = (f0, f0 - reach0, f0 + reach0, torch.addcmul(f1, ey, f0),
                          torch.addcmul(torch.addcmul(f2, kz0, f0), kz, f1), ey, kz0, kz, cy, xy, rr)
        metric = self.frame @ self.frame.transpose(1, 2)
        self.metric6 = metric[:, [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]] * self.frame.new_tensor([1, 1, 1, 2, 2, 2])
        # Rounding margins of the S1 and S2 ranges, in lattice units: near a tangent, the square root of the
        # rounding of a squared length ~ eps * cutoff^2, over the axis' lattice spacing.
        root_eps = 10 * torch.finfo(self.positions.dtype).eps ** 0.5
        self.margin1 = root_eps * (1 + float((self.cutoff / y1.abs()).max())) if y1.numel() else 0.0
        self.margin2 = root_eps * (1 + float((self.cutoff / z2.abs()).max())) if z2.numel() else 0.0
        if self.partial:  # per atom, the range a shift may take on each axis: any on periodic axes, 0 on the others
            infinite = torch.full_like(self.reach, float("inf"))
            low, high = torch.where(self.pbc, -infinite, 0.0), torch.where(self.pbc, infinite, 0.0)
            self.bounds = tuple(column.index_select(0, self.batch) for column in torch.cat([low, high], dim=1).T)


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


def _all_pairs_search(space: _Space, structs: Tensor, natoms: Tensor, offsets: Tensor, reserve, keep_dist2: bool):
    """Edges of ``structs`` (consecutive structures), made in lexicographic (i, j, S) order into the edge_index (2,E)
    and shifts (E,3) that ``reserve(E)`` returns; returns them and, if ``keep_dist2``, their squared lengths (else
    None).

    The pairs a <= b of each structure, row by row; per pair the S0 its cutoff sphere reaches (|f0| <= reach0, with
    f = s_b - s_a + S); per (pair, S0) the S1 the sphere's section at f0 reaches (from the triangular form of the
    lattice, with a margin for rounding); per (pair, S0, S1) the run of S2 strictly inside the sphere (the
    quadratic's roots), so every S2 of a run is an edge and nothing is filtered. Only an atom's own zero shift is cut
    out of its run. The runs of (a, b) serve (b, a) too, reversed and negated, and all runs are laid out in
    (i, j, S) order from per-atom counts: nothing is sorted.
    """
    device, index_dtype = space.positions.device, torch.float64  # shifts are counted in float64: exact integers
    begin = int(offsets[structs[0]])
    end = int(offsets[structs[-1]] + natoms[structs[-1]])
    index = torch.int32  # indices within a chunk: half the memory traffic of int64
    atoms = torch.arange(begin, end, device=device, dtype=index)
    atom_first = offsets.index_select(0, space.batch[begin:end]).to(index)  # the first atom of each atom's structure
    constants = [c[begin:end] for c in space.constants]
    bounds = [c[begin:end] for c in space.bounds] if space.partial else None
    # Level P, one entry per pair (a, b), a <= b: owner = a - begin.
    owner, pair_bounds = _owners(atom_first + natoms.index_select(0, space.batch[begin:end]).to(index) - atoms)
    first_pair = pair_bounds[:-1]
    j = torch.arange(owner.numel(), device=device, dtype=index) + (atoms - first_pair).index_select(0, owner)
    f0_j = space.constants[_F0].index_select(0, j)
    lo0 = torch.ceil(constants[_LOW0].index_select(0, owner) - f0_j)
    hi0 = torch.floor(constants[_HIGH0].index_select(0, owner) - f0_j)
    if space.partial:
        lo0, hi0 = _clamp(lo0, hi0, bounds, 0, owner)
    count0 = (hi0 - lo0 + 1).clamp_(min=0).to(index)
    ds0 = f0_j - constants[_F0].index_select(0, owner)
    center1_p = constants[_T1].index_select(0, owner) - space.constants[_T1].index_select(0, j)
    center2_p = constants[_T2].index_select(0, owner) - space.constants[_T2].index_select(0, j)
    # Level A, one entry per (pair, S0).
    pa, a_bounds = _owners(count0)
    first_a = a_bounds[:-1]
    oa = owner.index_select(0, pa)
    shift0 = _runs(lo0.to(index_dtype), first_a, pa)
    s0 = shift0.to(ds0.dtype)
    f0 = ds0.index_select(0, pa) + s0
    rem1 = torch.addcmul(constants[_CY].index_select(0, oa), constants[_XY].index_select(0, oa), f0 * f0, value=-1)
    center1 = torch.addcmul(center1_p.index_select(0, pa), constants[_EY].index_select(0, oa), s0, value=-1)
    half1 = torch.sqrt(rem1.clamp(min=0)).add_(space.margin1)  # extra S1 are harmless
    lo1, hi1 = torch.ceil(center1 - half1), torch.floor(center1 + half1)
    if space.partial:
        lo1, hi1 = _clamp(lo1, hi1, bounds, 1, oa)
    count1 = (hi1 - lo1 + 1).clamp_(min=0).to(index)
    center2_a = torch.addcmul(center2_p.index_select(0, pa), constants[_KZ0].index_select(0, oa), s0, value=-1)
    # Level B, one entry per (pair, S0, S1): the run of S2 with |vec| < cutoff.
    pb, b_bounds = _owners(count1)
    first_b = b_bounds[:-1]
    ob = oa.index_select(0, pb)
    shift1 = _runs(lo1.to(index_dtype), first_b, pb)
    s1 = shift1.to(ds0.dtype)
    u = s1 - center1.index_select(0, pb)
    rem2 = torch.addcmul(rem1.index_select(0, pb), u, u, value=-1).clamp_(min=0)
    half2 = torch.sqrt(rem2.mul_(constants[_RR].index_select(0, ob)))
    center2 = torch.addcmul(center2_a.index_select(0, pb), constants[_KZ].index_select(0, ob), s1, value=-1)
    # The run's ends are the roots' strict interior; where a root lies within rounding of an integer, the ends come
    # from the squared length itself (as near a tangent the roots carry errors ~sqrt(eps)).
    below, above = center2 - half2, center2.add_(half2)
    lo2, hi2 = torch.floor(below - space.margin2).add_(1), torch.ceil(above + space.margin2).sub_(1)
    unsure = torch.nonzero((below.add_(space.margin2) >= lo2) | (above.sub_(space.margin2) <= hi2)).squeeze(1)
    if space.partial:
        lo2, hi2 = _clamp(lo2, hi2, bounds, 2, ob)
    if unsure.numel():
        pairs = pa.index_select(0, pb.index_select(0, unsure))
        _exact_ends(space, unsure, lo2, hi2, owner.index_select(0, pairs) + begin, j.index_select(0, pairs),
                    s0.index_select(0, pb.index_select(0, unsure)), s1.index_select(0, unsure))
    count2 = (hi2 - lo2 + 1).clamp_(min=0).to(index)
    # An atom's own zero shift: its pair (a, a) comes first, then S0 = 0, then S1 = 0; cut out of the run of S2.
    self_a = first_a.index_select(0, first_pair) - lo0.index_select(0, first_pair).to(index)
    self_b = first_b.index_select(0, self_a) - lo1.index_select(0, self_a).to(index)
    count2.index_add_(0, self_b, torch.full_like(self_b, -1))
    # The runs: the B entries with edges; those of each pair, and of each atom as the first atom of its pairs.
    nonempty = count2 > 0
    kept = torch.nonzero(nonempty).squeeze(1)
    if not kept.numel():
        return *reserve(0), space.positions.new_zeros(0) if keep_dist2 else None
    runs_before = _exclusive_sums(nonempty, index)  # per B entry, and the total
    run_of_pair = runs_before.index_select(0, b_bounds.index_select(0, a_bounds))
    runs_of_pair = run_of_pair.diff()
    own_first = run_of_pair.index_select(0, pair_bounds)
    run_b = pb.index_select(0, kept)
    own_count = count2.index_select(0, kept)
    own = torch.stack([shift0.index_select(0, run_b), shift1.index_select(0, kept), lo2.index_select(0, kept).to(index_dtype)],
                      dim=1)  # a run: S0, S1, its first S2
    own_i = ob.index_select(0, kept)
    own_j = j.index_select(0, pa.index_select(0, run_b)) - begin
    # Mirrored pairs (a, b) for b < a, row by row, each with the runs of (b, a) reversed and negated.
    mirror_owner, mirror_bounds = _owners(atoms - atom_first)
    b = torch.arange(mirror_owner.numel(), device=device, dtype=index) + (atom_first - begin - mirror_bounds[:-1]).index_select(
        0, mirror_owner)
    source_pair = first_pair.index_select(0, b) + mirror_owner - b
    mirror_counts = runs_of_pair.index_select(0, source_pair)
    mirror_pair, mirror_run_bounds = _owners(mirror_counts)
    mirror_runs = torch.arange(mirror_pair.numel(), device=device, dtype=index)
    last = run_of_pair.index_select(0, source_pair) + mirror_counts - 1 + mirror_run_bounds[:-1]
    source = last.index_select(0, mirror_pair) - mirror_runs
    mirror_first = mirror_run_bounds.index_select(0, mirror_bounds)
    mirror_count = own_count.index_select(0, source)
    mirrored = own.index_select(0, source).neg_()
    mirrored[:, 2] -= mirror_count - 1  # the run's last S2, negated
    # Per atom: its mirrored runs, then its own runs.
    own_runs, mirror_runs_of_atom = own_first.diff(), mirror_first.diff()
    place = torch.cumsum(own_runs + mirror_runs_of_atom, 0) - own_runs
    place_own = (torch.arange(kept.numel(), device=device, dtype=index) + (place - own_first[:-1]).index_select(0, own_i)).long()
    mirror_i = mirror_owner.index_select(0, mirror_pair)
    place_mirror = (mirror_runs + (place - mirror_runs_of_atom - mirror_first[:-1]).index_select(0, mirror_i)).long()
    runs = kept.numel() + mirror_runs.numel()

    def merged(own_part: Tensor, mirror_part: Tensor) -> Tensor:
        out = own_part.new_empty((runs,) + tuple(own_part.shape[1:]))
        return out.index_copy_(0, place_own, own_part).index_copy_(0, place_mirror, mirror_part)

    count = merged(own_count, mirror_count)
    table = merged(own, mirrored)
    i_run = merged(own_i, mirror_i).long().add_(begin)
    j_run = merged(own_j, b.index_select(0, mirror_pair)).long().add_(begin)
    # Level E, one entry per edge.
    pe, e_bounds = _owners(count)
    first_e = e_bounds[:-1]
    table[:, 2] -= first_e.to(index_dtype)
    edge_index, out = reserve(pe.numel())
    torch.index_select(i_run, 0, pe, out=edge_index[0])
    torch.index_select(j_run, 0, pe, out=edge_index[1])
    shifts = torch.index_select(table, 0, pe, out=out) if out.dtype == index_dtype else table.index_select(0, pe)
    shifts[:, 2] += torch.arange(pe.numel(), device=device, dtype=index_dtype)
    # After the cut, the S2 >= 0 of an atom's own run sit one place further on (runs without them may be gone).
    tail, tail_bounds = _owners(hi2.index_select(0, self_b).to(index).clamp_(min=0))
    self_run = place_own.index_select(0, runs_before.index_select(0, self_b).clamp_(max=kept.numel() - 1))
    after = _runs(first_e.index_select(0, self_run) - lo2.index_select(0, self_b).to(index), tail_bounds[:-1], tail)
    shifts[:, 2].index_add_(0, after, torch.ones_like(after, dtype=index_dtype))
    if shifts is not out:
        out.copy_(shifts)
    return edge_index, out, _squared_lengths(space, edge_index, out) if keep_dist2 else None


def _exact_ends(space: _Space, entries: Tensor, lo2: Tensor, hi2: Tensor, i: Tensor, j: Tensor, s0: Tensor,
                s1: Tensor) -> None:
    """The runs of S2 of a few (pair, S0, S1) ``entries`` narrowed in place to the S2 in [lo2, hi2] whose squared
    length, f^T G f with the cell's metric G, is below the cutoff's (empty: lo2 > hi2)."""
    candidate, bounds = _owners((hi2.index_select(0, entries) - lo2.index_select(0, entries) + 1).clamp_(min=0).long())
    s2 = _runs(lo2.index_select(0, entries), bounds[:-1], candidate)
    i, j = i.index_select(0, candidate), j.index_select(0, candidate)
    f = torch.stack([column.index_select(0, j) - column.index_select(0, i) + s.index_select(0, candidate)
                     for column, s in zip(space.frac_columns, (s0, s1))] +
                    [space.frac_columns[2].index_select(0, j) - space.frac_columns[2].index_select(0, i) + s2], dim=1)
    inside = torch.nonzero(_dist2(f, space.metric6.index_select(0, space.batch.index_select(0, i))) < space.cutoff ** 2)
    candidate, s2 = candidate.index_select(0, inside.squeeze(1)), s2.index_select(0, inside.squeeze(1))
    low = torch.full_like(entries, float("inf"), dtype=lo2.dtype).scatter_reduce_(0, candidate, s2, "amin")
    high = torch.full_like(entries, -float("inf"), dtype=hi2.dtype).scatter_reduce_(0, candidate, s2, "amax")
    lo2.index_copy_(0, entries, low)
    hi2.index_copy_(0, entries, high)


def _squared_lengths(space: _Space, edge_index: Tensor, shifts: Tensor) -> Tensor:
    """|vec|^2 of edges as a sum of squares in the triangular frame (so that symmetric ties stay exact)."""
    i, j = edge_index
    f0, f1, f2 = (column.index_select(0, j) - column.index_select(0, i) + shifts[:, axis]
                  for axis, column in enumerate(space.frac_columns))
    x0, y0, y1, z0, z1, z2 = space.triangular.index_select(0, space.batch.index_select(0, i)).unbind(1)
    return (x0 * f0) ** 2 + (y0 * f0 + y1 * f1) ** 2 + (z0 * f0 + z1 * f1 + z2 * f2) ** 2


def _clamp(low: Tensor, high: Tensor, bounds: list, axis: int, atom: Tensor) -> tuple[Tensor, Tensor]:
    """A shift range [low, high] limited to 0 on non-periodic axes (bounds: per atom, the low then the high limits)."""
    return (torch.maximum(low, bounds[axis].index_select(0, atom)),
            torch.minimum(high, bounds[3 + axis].index_select(0, atom)))


def _owners(count: Tensor) -> tuple[Tensor, Tensor]:
    """For counts c_0, c_1, ... >= 0: the owner o of each of their sum(count) items, in order, and the bounds of the
    owners' items (exclusive prefix sums, then the total: owner o has items bounds[o] to bounds[o + 1] - 1), in the
    counts' dtype."""
    bounds = _exclusive_sums(count, count.dtype)
    total = int(bounds[-1])
    marks = torch.zeros(total + 1, dtype=count.dtype, device=count.device)
    marks.index_add_(0, bounds[:-1], torch.ones_like(count))
    marks[0] -= 1
    return torch.cumsum(marks[:total], 0, dtype=count.dtype), bounds


def _exclusive_sums(values: Tensor, dtype: torch.dtype) -> Tensor:
    """0, v_0, v_0 + v_1, ..., sum(v): n + 1 prefix sums."""
    sums = torch.zeros(values.numel() + 1, dtype=dtype, device=values.device)
    torch.cumsum(values, 0, dtype=dtype, out=sums[1:])
    return sums


def _runs(start: Tensor, first: Tensor, owner: Tensor) -> Tensor:
    """start[o] + r for the r-th item of each owner o (items in owner order, ``first`` the owners' first items)."""
    return (torch.arange(owner.numel(), device=owner.device, dtype=start.dtype)
            + (start - first.to(start.dtype)).index_select(0, owner))


def _ranks(count: Tensor) -> tuple[Tensor, Tensor]:
    """For counts c_0, c_1, ...: the owner o and the rank r < c_o of each of their sum(count) items."""
    owner, bounds = _owners(count)
    return owner, torch.arange(owner.numel(), device=count.device) - bounds.index_select(0, owner)


def _cell_list_search(space: _Space, b: int, start: int, n: int, max_pairs: int):
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
        dist2 = _dist2(f, g6)
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


def _dist2(f: Tensor, g6: Tensor) -> Tensor:
    """Squared length of fractional vectors f (E,3) under metric coefficients g6 (E,6) or (6,)."""
    f0, f1, f2 = f.unbind(1)
    g = g6.unbind(-1)
    return f0 * (g[0] * f0 + g[3] * f1 + g[4] * f2) + f1 * (g[1] * f1 + g[5] * f2) + g[2] * f2 * f2



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
