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
size (memory O(chunk + edges)), written in place into outputs sized by an estimate of the edge count.

Method (cell list, structures of at least ``CELL_LIST_MIN_ATOMS`` atoms; time and memory O(N)): the atoms, wrapped
into the cell, and their images within the cutoff's reach of it along periodic axes (ghosts, made in lexicographic
(j, S) order) are binned by Cartesian coordinates into columns about cutoff/2 wide, cut into bins cutoff/8 deep, and
sorted by bin. Per atom and column within reach, the bins that the sphere's section at the column's nearest point
spans hold one contiguous range of ghosts, so candidates are laid out by prefix sums, with no wrapping or image
arithmetic per candidate; those within the cutoff are kept and, per block of atoms, sorted by (i, ghost), i.e. by
(i, j, S).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from foundation.data.pair_search import SearchSpace, all_pairs_search, owners

# Pairs (i, j) examined at once by the all-pairs search (working memory ~300 bytes per pair): on CPU small enough
# for the cache (and for the allocator to reuse memory), on an accelerator large enough to amortise kernel launches.
MAX_PAIRS_PER_CHUNK = 1 << 15
MAX_PAIRS_PER_CHUNK_ACCELERATOR = 1 << 22
# Structures at least this large use the cell list (all-pairs would cost N^2).
CELL_LIST_MIN_ATOMS = 1024
# Image shifts per atom pair a structure may need (the box the cutoff spans in lattice units); a skewed or nearly
# flat cell whose lattice planes lie far closer than the cutoff would need millions and exhaust memory.
MAX_IMAGE_SHIFTS = 100_000
# Cell list: columns about 2 cutoff / COLUMN_SPLIT wide, bins along them about cutoff / DEPTH_SPLIT deep (finer
# bins waste fewer candidates per edge but cost more bins per atom).
COLUMN_SPLIT = 4
DEPTH_SPLIT = 8


def radius_graph_pbc(
    positions: Tensor,
    cell: Tensor,
    pbc: Tensor,
    batch: Tensor,
    cutoff: float,
    max_neighbours: int | None = None,
) -> tuple[Tensor, Tensor]:
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
        inv = (
            faces.transpose(1, 2) / volume[:, None, None]
        )  # the columns of the inverse: the faces over the volume
        reach = (
            cutoff * torch.linalg.vector_norm(inv, dim=1) * (1 + 64 * torch.finfo(pos.dtype).eps)
        )
        _check_image_budget(reach, pbc, cell, cutoff)
        space = SearchSpace(
            pos, inv, batch, reach, frame, faces, volume, pbc, bool((~pbc).any()), cutoff
        )
        natoms = torch.bincount(batch, minlength=cell.shape[0])
        offsets = torch.cumsum(natoms, 0) - natoms
        # Every atom's edges come from one part (its structure's chunk, or a block of its structure's cell list), in
        # lexicographic (i, j, S) order, so parts are capped independently and laid one after another in order of i.
        max_pairs = (
            MAX_PAIRS_PER_CHUNK if pos.device.type == "cpu" else MAX_PAIRS_PER_CHUNK_ACCELERATOR
        )
        parts = [(int(chunk[0]), chunk) for chunk in _pair_chunks(natoms, max_pairs)]
        parts += [
            (b, None) for b in torch.nonzero(natoms >= CELL_LIST_MIN_ATOMS).flatten().tolist()
        ]
        edges = _Edges(pos, _expected_edges(natoms, volume, pbc, cutoff))
        capped = max_neighbours is not None

        def fresh(n: int) -> tuple[Tensor, Tensor]:  # parts to be capped first
            return torch.empty(2, n, dtype=torch.long, device=pos.device), pos.new_empty(n, 3)

        reserve = fresh if capped else edges.reserve
        for first, chunk in sorted(parts, key=lambda part: part[0]):
            if chunk is None:
                blocks = _cell_list_search(
                    space,
                    first,
                    int(offsets[first]),
                    int(natoms[first]),
                    max_pairs,
                    reserve,
                    capped,
                )
            else:
                blocks = [all_pairs_search(space, chunk, natoms, offsets, reserve, capped)]
            for part in blocks:  # written into the edges already, unless capped
                if capped:
                    index, shifts = _nearest(*part, max_neighbours)
                    rows, out = edges.reserve(shifts.shape[0])
                    rows.copy_(index)
                    out.copy_(shifts)
        return edges.result()


def _expected_edges(natoms: Tensor, volume: Tensor, pbc: Tensor, cutoff: float) -> int:
    """About how many edges a batch has: n^2 (4/3 pi cutoff^3) / volume per periodic structure (a uniform density;
    within a few % on real frames at 5-6 A), n (n - 1) for the others."""
    n = natoms.to(volume.dtype)
    uniform = n * n * (4 / 3 * math.pi * cutoff**3) / volume.abs()
    return int(torch.where(pbc.all(dim=1), uniform, n * (n - 1)).sum()) if n.numel() else 0


class _Edges:
    """The edges of a batch, written part after part in order into buffers sized by an estimate of their number
    (grown when it falls short), so that parts need no concatenation."""

    def __init__(self, like: Tensor, expected: int):
        self.capacity, self.size = max(int(expected * 1.05), 16), 0
        self.index = _fresh((2, self.capacity), torch.long, like.device)
        self.shifts = _fresh((self.capacity, 3), like.dtype, like.device)

    def reserve(self, n: int) -> tuple[Tensor, Tensor]:
        """Room for the next n edges: views (2,n) of edge_index and (n,3) of shifts, to be written."""
        end = self.size + n
        if end > self.capacity:
            self.capacity = max(end, int(self.capacity * 1.25))
            index = _fresh((2, self.capacity), torch.long, self.index.device)
            shifts = _fresh((self.capacity, 3), self.shifts.dtype, self.shifts.device)
            index[:, : self.size] = self.index[:, : self.size]
            shifts[: self.size] = self.shifts[: self.size]
            self.index, self.shifts = index, shifts
        start, self.size = self.size, end
        return self.index[:, start:end], self.shifts[start:end]

    def result(self) -> tuple[Tensor, Tensor]:
        """edge_index (2,E), contiguous, and shifts (E,3); views of the buffers unless they are far too large."""
        size, spare = self.size, self.capacity - self.size
        if not spare:
            return self.index, self.shifts
        if (
            spare * 4 > size or spare * 64 < size
        ):  # a poor estimate, or too little room to move row j in few steps
            shifts = self.shifts[:size].clone() if spare * 4 > size else self.shifts[:size]
            return self.index[:, :size].contiguous(), shifts
        flat = self.index.view(-1)
        for start in range(
            0, size, spare
        ):  # row j moves down by `spare`, block by block: no block overlaps its source
            stop = min(start + spare, size)
            flat[size + start : size + stop].copy_(
                flat[self.capacity + start : self.capacity + stop]
            )
        return flat[: 2 * size].view(2, size), self.shifts[:size]


def _fresh(shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised tensor; on CPU from numpy, which asks the kernel for huge pages for large arrays (on Linux):
    the first writes into the ~40 bytes per edge of a large batch then fault a page per 2 MiB, not per 4 KiB (on
    100+ MB, half the time)."""
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    return (
        torch.from_numpy(np.empty(math.prod(shape) * dtype.itemsize, dtype=np.uint8))
        .view(dtype)
        .view(shape)
    )


def edge_vectors(
    positions: Tensor, cell: Tensor, batch: Tensor, edge_index: Tensor, shifts: Tensor
) -> Tensor:
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
        raise ValueError(
            f"batch must be non-decreasing structure indices in [0, {b}), got {batch.tolist()[:20]}..."
        )


def _check_image_budget(reach: Tensor, pbc: Tensor, cell: Tensor, cutoff: float) -> None:
    shifts = torch.where(pbc, 2 * torch.floor(reach) + 3, torch.ones_like(reach)).prod(dim=1)
    if shifts.numel() and float(shifts.max()) > MAX_IMAGE_SHIFTS:
        b = int(torch.argmax(shifts))
        raise ValueError(
            f"structure {b}: cell too thin for the cutoff: {cutoff:g} A spans up to {float(shifts[b]):.3g} "
            f"image shifts per atom pair (more than {MAX_IMAGE_SHIFTS}); cell {cell[b].tolist()}"
        )


def _search_frame(cell: Tensor, pbc: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The cell with each non-periodic row replaced by a unit vector orthogonal to the periodic rows and to each
    other, so fractional coordinates exist for molecules, slabs and wires (their shifts stay 0 on those axes); with
    its faces (row k: a_k+1 x a_k+2) and signed volume (closed forms: no batched linear algebra for 3x3 matrices)."""
    frame = cell.clone()
    partial = torch.nonzero(~pbc.all(dim=1)).flatten()
    if partial.numel():
        periodic = torch.where(
            pbc[partial, :, None], cell[partial], torch.zeros_like(cell[partial])
        )
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
        raise ValueError(
            f"structure {b} has a degenerate cell along its periodic axes {pbc[b].tolist()}: "
            f"{cell[b].tolist()}"
        )
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


def _cell_list_search(
    space: SearchSpace, b: int, start: int, n: int, max_pairs: int, reserve, keep_dist2: bool
):
    """Edges of one large structure by a cell list over its atoms and their periodic images near the cell (ghosts,
    see ``_Grid``), made block by block of atoms i (so that the working memory stays bounded for any size) in
    lexicographic (i, j, S) order into the edge_index (2,E) and shifts (E,3) that ``reserve(E)`` returns; yields them
    per block and, if ``keep_dist2``, their squared lengths (else None)."""
    periodic, frame = space.pbc[b], space.frame[b]
    frac = torch.stack([column[start : start + n] for column in space.frac_columns], dim=1)
    wrap = torch.where(
        periodic, torch.floor(frac), torch.zeros_like(frac)
    )  # periodic axes into [0, 1]
    wrapped = bool(wrap.any())
    source, image = _ghosts(frac - wrap, periodic, space.reach[b])
    shift = image.to(frac.dtype) - wrap.index_select(
        0, source
    )  # of each ghost, from its atom as given
    grid = _Grid(
        torch.addmm(space.positions[start : start + n].index_select(0, source), shift, frame),
        space.cutoff,
    )
    ghosts = grid.order.numel()
    place = torch.empty_like(grid.order).index_copy_(
        0, grid.order.long(), torch.arange(ghosts, dtype=grid.order.dtype, device=frac.device)
    )
    own = place.index_select(
        0, torch.nonzero((image == 0).all(dim=1)).squeeze(1)
    )  # each atom's ghost in [0, 1]
    source += start
    # An atom's (COLUMN_SPLIT + 1)^2 column entries and ~50-80 candidates take the working memory of ~32 all-pairs
    # pairs; atom * ghosts + ghost must fit in int32.
    block = min(max(1, max_pairs // 32), (2**31 - 1) // ghosts)
    for begin in range(0, n, block):
        atom, point, dist2 = grid.neighbours(own[begin : begin + block], keep_dist2)
        # Ghosts are made in lexicographic (j, S) order, and atoms come in order.
        key, lexicographic = torch.sort(
            torch.add(grid.order.index_select(0, point), atom, alpha=ghosts)
        )
        ghost = key.sub_(atom, alpha=ghosts)
        edge_index, shifts = reserve(ghost.numel())
        torch.add(atom, begin + start, out=edge_index[0])
        torch.index_select(source, 0, ghost, out=edge_index[1])
        torch.index_select(shift, 0, ghost, out=shifts)
        if wrapped:
            shifts += wrap[begin : begin + block].index_select(0, atom)
        yield edge_index, shifts, dist2.index_select(0, lexicographic) if keep_dist2 else None


def _ghosts(s: Tensor, periodic: Tensor, reach: Tensor) -> tuple[Tensor, Tensor]:
    """The images s + m (m integer, 0 on non-periodic axes) of atoms at fractional coordinates s (in [0, 1] on
    periodic axes) within ``reach`` of [0, 1] on every periodic axis, m = 0 among them: each image's atom and m (G,3),
    in lexicographic (atom, m) order."""
    low = torch.where(periodic, torch.ceil(-reach - s), torch.zeros_like(s)).long()
    size = torch.where(periodic, torch.floor(1 + reach - s), torch.zeros_like(s)).long() - low + 1
    atom, k = _ranks(size.prod(dim=1))
    size, low = size.index_select(0, atom), low.index_select(0, atom)
    q = torch.div(k, size[:, 2], rounding_mode="floor")
    q1 = torch.div(q, size[:, 1], rounding_mode="floor")
    return atom, low + torch.stack([q1, q - q1 * size[:, 1], k - q * size[:, 2]], dim=1)


class _Grid:
    """Points (G,3) in bins: columns across the first two Cartesian axes, about 2 cutoff / COLUMN_SPLIT wide (so that
    a cutoff sphere meets at most COLUMN_SPLIT + 1 of them per axis), cut into bins about cutoff / DEPTH_SPLIT deep
    along the third; points sorted by bin, so that the bins of a column that a sphere reaches hold one contiguous
    range of points. Indices are int32."""

    def __init__(self, points: Tensor, cutoff: float):
        low, high = points.min(dim=0).values, points.max(dim=0).values
        # The rounding of coordinates and of squared lengths, in length units, with a wide margin.
        self.margin = (
            64 * torch.finfo(points.dtype).eps * (cutoff + float(torch.maximum(-low, high).max()))
        )
        self.cutoff, self.reach = cutoff, cutoff + self.margin
        target = points.new_tensor(
            [2 * (self.reach + self.margin) / COLUMN_SPLIT] * 2 + [cutoff / DEPTH_SPLIT]
        )
        extent = (high - low).clamp(min=cutoff)
        # At most ~2 G^(1/3) columns per axis and ~8 G bins in all (vacuum, sparse or tiny-cutoff structures).
        g = points.shape[0]
        nbins = (
            torch.floor(extent / target)
            .clamp(min=1, max=2 * round(g ** (1 / 3)) + 1)
            .long()
            .tolist()
        )
        nbins[2] = min(nbins[2], max(1, 8 * g // (nbins[0] * nbins[1])))
        self.nbins, self.strides, self.outside = (
            nbins,
            (nbins[1] * nbins[2], nbins[2]),
            math.prod(nbins),
        )
        width = extent / extent.new_tensor(nbins)
        bins = torch.minimum(
            torch.floor((points - low) / width).long(),
            torch.tensor(nbins, device=points.device) - 1,
        )
        self.origin, self.width = low.tolist(), width.tolist()
        flat = (bins[:, 0] * nbins[1] + bins[:, 1]) * nbins[2] + bins[:, 2]
        self.order = torch.sort(flat).indices.int()
        # first[k]: the place of the first point in bin k or after it; past the bins, up to twice over (columns out of
        # reach are sent there), the number of points.
        counts = torch.bincount(flat, minlength=2 * self.outside + nbins[2])
        self.first = torch.zeros(counts.numel() + 1, dtype=torch.int32, device=points.device)
        torch.cumsum(counts, 0, out=self.first[1:])
        self.columns = bins[:, :2].index_select(0, self.order).T.int()
        self.coordinates = tuple(points.index_select(0, self.order).T.contiguous())

    def neighbours(self, atoms: Tensor, keep_dist2: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """The points within the cutoff of the points ``atoms`` (places in the grid), not themselves: per pair, the
        atom's rank in ``atoms``, the point, and (if ``keep_dist2``, else None) their squared distance; in order of
        atoms."""
        count, first, own_entry = self._ranges(atoms)
        bounds = torch.zeros(count.numel() + 1, dtype=count.dtype, device=count.device)
        torch.cumsum(count, 0, out=bounds[1:])
        total, entries = int(bounds[-1]), (COLUMN_SPLIT + 1) ** 2
        # The k-th candidate, of entry e, is point first[e] + k - bounds[e], and of atom e // entries: both as
        # prefix sums of their steps.
        offset = first - bounds[:-1]
        point = torch.ones(total + 1, dtype=count.dtype, device=count.device)
        point.index_add_(0, bounds[:-1], torch.diff(offset, prepend=offset.new_zeros(1)))
        point[0] -= 1
        point = point[:total].cumsum_(0)
        atom = torch.zeros(total + 1, dtype=count.dtype, device=count.device)
        atom.index_add_(0, bounds[entries::entries], torch.ones_like(bounds[entries::entries]))
        atom = atom[:total].cumsum_(0)
        dist2 = None
        for column in self.coordinates:
            delta = column.index_select(0, point) - column.index_select(0, atoms).index_select(
                0, atom
            )
            dist2 = delta * delta if dist2 is None else dist2.addcmul_(delta, delta)
        inside = dist2 < self.cutoff**2
        inside[atoms - offset.index_select(0, own_entry)] = False
        kept = torch.nonzero(inside).squeeze(1)
        return (
            atom.index_select(0, kept),
            point.index_select(0, kept),
            dist2.index_select(0, kept) if keep_dist2 else None,
        )

    def _ranges(self, atoms: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per atom and each of the (COLUMN_SPLIT + 1)^2 columns around it: how many points of the column lie in the
        bins its cutoff sphere reaches there (its nearest point's section), and the first of them; per atom, the
        entry of its own column."""
        steps = torch.arange(COLUMN_SPLIT + 1, dtype=torch.int32, device=atoms.device)
        depth = self.width[2]
        bases, gaps2, own = [], [], []
        for axis in range(2):  # in units of the axis' bins, the gaps in units of depth bins
            p = (self.coordinates[axis].index_select(0, atoms) - self.origin[axis]) / self.width[
                axis
            ]
            reach, last = self.reach / self.width[axis], self.nbins[axis] - 1
            lo = (p - reach).clamp_(min=0, max=last).int()  # truncation: the floor of what is >= 0
            hi = torch.minimum((p + reach).clamp_(max=last).int(), lo + COLUMN_SPLIT)
            column = lo[:, None] + steps
            gap = (
                (p[:, None] - 0.5 - column).abs_() - (0.5 + self.margin / self.width[axis])
            ).clamp_(min=0)
            gaps2.append(gap.mul_(self.width[axis] / depth).square_())
            bases.append(
                torch.where(column <= hi[:, None], column * self.strides[axis], self.outside)
            )
            own.append(self.columns[axis].index_select(0, atoms) - lo)
        reach2 = ((self.reach / depth) ** 2 - gaps2[0])[:, :, None] - gaps2[1][:, None, :]
        half = reach2.clamp(min=0).sqrt_()
        z = ((self.coordinates[2].index_select(0, atoms) - self.origin[2]) / depth)[:, None, None]
        base = torch.where(
            reach2 < 0, 2 * self.outside, bases[0][:, :, None] + bases[1][:, None, :]
        ).view(-1)
        first = self.first.index_select(
            0, base + (z - half).clamp_(min=0, max=self.nbins[2] - 1).int().view(-1)
        )
        count = self.first[1:].index_select(
            0, base + (z + half).clamp_(max=self.nbins[2] - 1).int().view(-1)
        )
        own_entry = (
            torch.arange(atoms.numel(), dtype=torch.int32, device=atoms.device) * (COLUMN_SPLIT + 1)
            + own[0]
        ) * (COLUMN_SPLIT + 1) + own[1]
        return count.sub_(first), first, own_entry


def _nearest(
    edge_index: Tensor, shifts: Tensor, dist2: Tensor, max_neighbours: int
) -> tuple[Tensor, Tensor]:
    """Per atom i, the max_neighbours nearest edges; edges arrive in (i, j, shift) lexicographic order, so stable sorts
    by distance then by i break ties by j then shift."""
    i = edge_index[0]
    by_dist = torch.sort(dist2, stable=True).indices
    order = by_dist.index_select(0, torch.sort(i.index_select(0, by_dist), stable=True).indices)
    sorted_i = i.index_select(0, order)
    new_atom = torch.ones_like(sorted_i, dtype=torch.bool)
    new_atom[1:] = sorted_i[1:] != sorted_i[:-1]
    position = torch.arange(i.numel(), device=i.device)
    group_start = torch.cummax(
        torch.where(new_atom, position, torch.zeros_like(position)), dim=0
    ).values
    keep = torch.zeros_like(i, dtype=torch.bool)
    keep[order[position - group_start < max_neighbours]] = True
    keep = torch.nonzero(keep).squeeze(1)
    return edge_index.index_select(1, keep), shifts.index_select(0, keep)
