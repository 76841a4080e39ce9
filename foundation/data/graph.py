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
    integer values, such that vec = positions[j] - positions[i] + shifts @ cell[batch[i]] has 0 < |vec| < cutoff
    (self-images included, i == j with zero shift never). ``max_neighbours`` keeps the nearest per atom i; ties are
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
        frame = _search_frame(cell, pbc)
        inv = torch.linalg.inv(frame)
        frac = torch.einsum("ni,nik->nk", pos, inv[batch])
        wrap = torch.where(pbc[batch], torch.floor(frac), torch.zeros_like(frac))
        frac = frac - wrap
        rounded_up = pbc[batch] & (frac >= 1)  # x - floor(x) can round to 1.0; keep wrapped coordinates in [0, 1)
        wrap = wrap + rounded_up
        frac = torch.where(rounded_up, frac - 1, frac)
        reach = cutoff * torch.linalg.vector_norm(inv, dim=1) * (1 + 64 * torch.finfo(pos.dtype).eps)
        _check_image_budget(reach, pbc, cell, cutoff)
        metric = frame @ frame.transpose(1, 2)
        metric6 = metric[:, [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]] * pos.new_tensor([1, 1, 1, 2, 2, 2])
        space = _Space(frac, wrap, batch, torch.cat([reach, metric6], dim=1), pbc, bool((~pbc).any()), cutoff)
        natoms = torch.bincount(batch, minlength=cell.shape[0])
        offsets = torch.cumsum(natoms, 0) - natoms
        # Every atom's edges come from one part (its structure's chunk, or its structure's cell list), in
        # lexicographic (i, j, S) order, so parts are capped independently and concatenate in order of i.
        max_pairs = MAX_PAIRS_PER_CHUNK if pos.device.type == "cpu" else MAX_PAIRS_PER_CHUNK_ACCELERATOR
        parts = [(int(chunk[0]), _all_pairs_search(space, chunk, natoms, offsets, max_neighbours is not None))
                 for chunk in _pair_chunks(natoms, max_pairs)]
        parts += [(b, _cell_list_search(space, b, int(offsets[b]), int(natoms[b]), max_pairs))
                  for b in torch.nonzero(natoms >= CELL_LIST_MIN_ATOMS).flatten().tolist()]
        if not parts:
            return torch.zeros(2, 0, dtype=torch.long, device=pos.device), pos.new_zeros(0, 3)
        parts = [_finish(space, *part, max_neighbours) for _, part in sorted(parts, key=lambda p: p[0])]
        return torch.cat([p[0] for p in parts], dim=1), torch.cat([p[1] for p in parts])


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


def _search_frame(cell: Tensor, pbc: Tensor) -> Tensor:
    """The cell with each non-periodic row replaced by a unit vector orthogonal to the periodic rows and to each
    other, so fractional coordinates exist for molecules, slabs and wires (their shifts stay 0 on those axes)."""
    frame = cell.clone()
    partial = torch.nonzero(~pbc.all(dim=1)).flatten()
    if partial.numel():
        periodic = torch.where(pbc[partial, :, None], cell[partial], torch.zeros_like(cell[partial]))
        _, _, vh = torch.linalg.svd(periodic)  # rows of vh beyond the rank span the complement
        rank = pbc[partial].sum(dim=1, keepdim=True)
        slot = (rank + torch.cumsum((~pbc[partial]).long(), dim=1) - 1).clamp(max=2)
        complement = torch.gather(vh, 1, slot.unsqueeze(-1).expand(-1, -1, 3))
        frame[partial] = torch.where(pbc[partial, :, None], periodic, complement)
    volume = torch.linalg.det(frame).abs()
    lengths = torch.linalg.vector_norm(frame, dim=2).prod(dim=1)
    bad = torch.nonzero(volume <= 1e-9 * lengths.clamp(min=1e-30)).flatten()
    if bad.numel():
        b = int(bad[0])
        raise ValueError(f"structure {b} has a degenerate cell along its periodic axes {pbc[b].tolist()}: "
                         f"{cell[b].tolist()}")
    return frame


@dataclass
class _Space:
    """What the searches share: wrapped fractional coordinates (N,3), per structure ``table`` (B,9) = reach (the
    cutoff in fractional units per axis) and the metric's 6 coefficients (see _dist2), pbc, the cutoff."""

    frac: Tensor
    wrap: Tensor  # frac = original fractional coordinates - wrap (integers, 0 on non-periodic axes)
    batch: Tensor
    table: Tensor
    pbc: Tensor
    partial: bool  # some structure has a non-periodic axis
    cutoff: float

    def __post_init__(self) -> None:
        # Contiguous columns: gathers with sorted indices from 1-d tensors are several times faster than row gathers.
        self.frac_columns = tuple(self.frac.T.contiguous())
        self.table_columns = tuple(self.table.T.contiguous())
        self.pbc_columns = tuple(self.pbc.T.contiguous())
        self.wrapped = bool(self.wrap.any())  # positions outside their cell (else shifts are the images)


def _dist2(f: Tensor, g6: Tensor) -> Tensor:
    """Squared length of fractional vectors f (E,3) under metric coefficients g6 (E,6) or (6,)."""
    f0, f1, f2 = f.unbind(1)
    g = g6.unbind(-1)
    return f0 * (g[0] * f0 + g[3] * f1 + g[4] * f2) + f1 * (g[1] * f1 + g[5] * f2) + g[2] * f2 * f2


def _pair_chunks(natoms: Tensor, max_pairs: int) -> list[Tensor]:
    """The structures searched all-pairs, grouped in consecutive chunks of about ``max_pairs`` pairs; no chunk
    straddles a cell-list structure, so chunks and cell lists hold disjoint, ordered ranges of atoms."""
    big = natoms >= CELL_LIST_MIN_ATOMS
    cost = torch.where(big, torch.zeros_like(natoms), natoms * natoms)
    structs = torch.nonzero(cost > 0).flatten()
    if not structs.numel():
        return []
    cost = cost[structs]
    chunk_of = torch.div(torch.cumsum(cost, 0) - cost, max_pairs, rounding_mode="floor")
    chunk_of = chunk_of * (natoms.numel() + 1) + torch.cumsum(big, 0).index_select(0, structs)
    sizes = torch.unique_consecutive(chunk_of, return_counts=True)[1]
    return list(torch.split(structs, sizes.tolist()))


def _all_pairs_search(space: _Space, structs: Tensor, natoms: Tensor, offsets: Tensor, keep_dist2: bool):
    """Edges of ``structs``: each unordered pair i <= j of a structure with its box of image shifts, then the
    mirror images (j, i, -S) of the i < j edges, in lexicographic (i, j, S) order (squared distances too if
    ``keep_dist2``, else None)."""
    n = natoms.index_select(0, structs)
    first = offsets.index_select(0, structs)
    total = int(n.sum())
    start = torch.cumsum(n, 0) - n
    atoms = torch.repeat_interleave(first - start, n, output_size=total) + torch.arange(total, device=n.device)
    later = torch.repeat_interleave(first + n, n, output_size=total) - atoms  # j = i .. end of its structure
    pair_atom, rank = _ranks(later)
    i = atoms.index_select(0, pair_atom)
    j = i + rank
    i, j, image, dist2 = _expand_images(space, i, j)
    return _with_mirrors(i, j, image, dist2 if keep_dist2 else None)


def _with_mirrors(i: Tensor, j: Tensor, image: Tensor, dist2: Tensor | None):
    """The edges (i, j, S), i <= j, in lexicographic order, merged with the mirrors (j, i, -S) of those with i < j.

    Per atom a, its mirrors (j < a) come before its own edges (j >= a): only the mirrors need sorting, and each
    edge's place follows from per-atom counts, so both halves are written straight into their final positions."""
    mirror = torch.nonzero(i != j).squeeze(1)
    if not i.numel():
        return i, j, image, dist2
    mi, mj, mimage = j.index_select(0, mirror), i.index_select(0, mirror), -image.index_select(0, mirror)
    order = _lexicographic_order(mi, mj, mimage)
    mirror = mirror.index_select(0, order)
    mi, mj, mimage = mi.index_select(0, order), mj.index_select(0, order), mimage.index_select(0, order)
    low = int(i[0])
    atoms = int(j.max()) - low + 1  # i <= j: every atom of the chunk lies in [low, low + atoms)
    own, mirrored = torch.bincount(i - low, minlength=atoms), torch.bincount(mi - low, minlength=atoms)
    total = i.numel() + mi.numel()
    arange = torch.arange(total, device=i.device)
    place_own = arange[:i.numel()] + torch.cumsum(mirrored, 0).index_select(0, i - low)
    place_mirror = arange[:mi.numel()] + (torch.cumsum(own, 0) - own).index_select(0, mi - low)

    def merged(forward: Tensor, backward: Tensor) -> Tensor:
        out = forward.new_empty((total,) + tuple(forward.shape[1:]))
        return out.index_copy_(0, place_own, forward).index_copy_(0, place_mirror, backward)

    dist2 = None if dist2 is None else merged(dist2, dist2.index_select(0, mirror))
    return merged(i, mi), merged(j, mj), merged(image, mimage), dist2


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


def _expand_images(space: _Space, i: Tensor, j: Tensor):
    """For pairs (i, j) (i non-decreasing), every image shift S with 0 < |s_j - s_i + S| < cutoff (S = 0 on
    non-periodic axes). Returns i, j, S (long) and squared distances, in lexicographic (S0, S1, S2) order per pair.

    S0 and S1 run over the pair's box |s_j - s_i + S|_k <= reach_k; for each (S0, S1) the S2 that can lie within
    the cutoff solve a quadratic (the metric restricted to axis 2), so nearly every final candidate is an edge.
    """
    struct = space.batch.index_select(0, i)
    reach0, reach1, reach2, g00, g11, g22, g01, g02, g12 = (c.index_select(0, struct) for c in space.table_columns)
    low, first, size = [], [], []  # per axis: the box's first shift, its fractional component, the box's size
    for axis, reach in enumerate((reach0, reach1, reach2)):
        ds = space.frac_columns[axis].index_select(0, j) - space.frac_columns[axis].index_select(0, i)
        lo, hi = torch.ceil(-reach - ds), torch.floor(reach - ds)
        if space.partial:
            periodic = space.pbc_columns[axis].index_select(0, struct)
            lo = torch.where(periodic, lo, lo.clamp(min=0))
            hi = torch.where(periodic, hi, hi.clamp(max=0))
        low.append(lo)
        first.append(ds + lo)
        size.append((hi - lo + 1).clamp_(min=0))
    # Stage 1, one entry per (pair, S0, S1).
    pair, k = _ranks((size[0] * size[1] * (size[2] > 0)).long())
    k = k.to(g00.dtype)
    size1 = size[1].index_select(0, pair)
    step0 = torch.floor(k / size1)
    step1 = k - step0 * size1
    f0 = first[0].index_select(0, pair) + step0
    f1 = first[1].index_select(0, pair) + step1
    g22_e = g22.index_select(0, pair)
    # |f|^2 = g22 f2^2 + 2 b f2 + c for the entry's f0, f1 (g01, g02, g12 hold twice the off-diagonal entries).
    b = 0.5 * (g02.index_select(0, pair) * f0 + g12.index_select(0, pair) * f1)
    c = f0 * (g00.index_select(0, pair) * f0 + g01.index_select(0, pair) * f1) + g11.index_select(0, pair) * f1 * f1
    disc = b * b - g22_e * (c - space.cutoff ** 2)
    root = torch.sqrt(disc.clamp(min=0))
    tolerance = 10 * torch.finfo(f0.dtype).eps ** 0.5  # generous: extra candidates are filtered below
    first2 = first[2].index_select(0, pair)
    from2 = torch.ceil((-b - root) / g22_e - first2 - tolerance).clamp_(min=0)
    to2 = torch.minimum(torch.floor((-b + root) / g22_e - first2 + tolerance), size[2].index_select(0, pair) - 1)
    count2 = torch.where(disc >= 0, (to2 - from2 + 1).clamp(min=0), torch.zeros_like(to2))
    # Stage 2, one entry per candidate (pair, S0, S1, S2).
    entry, k2 = _ranks(count2.long())
    step2 = from2.index_select(0, entry) + k2.to(f0.dtype)
    f2 = first2.index_select(0, entry) + step2
    dist2 = c.index_select(0, entry) + f2 * (2 * b.index_select(0, entry) + g22_e.index_select(0, entry) * f2)
    kept = torch.nonzero((dist2 < space.cutoff ** 2) & (dist2 > 0)).squeeze(1)
    entry = entry.index_select(0, kept)
    source = pair.index_select(0, entry)
    image = torch.stack([low[0].index_select(0, source) + step0.index_select(0, entry),
                         low[1].index_select(0, source) + step1.index_select(0, entry),
                         low[2].index_select(0, source) + step2.index_select(0, kept)], dim=1).long()
    return i.index_select(0, source), j.index_select(0, source), image, dist2.index_select(0, kept)


def _ranks(count: Tensor) -> tuple[Tensor, Tensor]:
    """For counts c_0, c_1, ...: the owner o and the rank r < c_o of each of their sum(count) items."""
    owner = torch.repeat_interleave(count)
    rank = torch.arange(owner.numel(), device=count.device) - (torch.cumsum(count, 0) - count).index_select(0, owner)
    return owner, rank


def _cell_list_search(space: _Space, b: int, start: int, n: int, max_pairs: int):
    """Edges of one large structure by a cell list: atoms binned into sub-cells of the (search) cell about
    cutoff/2 wide along each face normal; each atom i visits the sub-cells its cutoff box can reach. Atoms i are
    taken in blocks (~max_pairs / 64 at once), so the working memory stays bounded for any size."""
    s = space.frac[start:start + n]
    r, g6, periodic = space.table[b, :3], space.table[b, 3:], space.pbc[b]
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
        kept = torch.nonzero((dist2 < space.cutoff ** 2) & (dist2 > 0)).squeeze(1)
        i_local, j_local = i_local.index_select(0, kept), j_local.index_select(0, kept)
        image = torch.stack([image_k.index_select(0, kept) for image_k in images], dim=1)
        dist2 = dist2.index_select(0, kept)
        lexicographic = _lexicographic_order(i_local, j_local, image)
        parts.append((i_local.index_select(0, lexicographic) + start, j_local.index_select(0, lexicographic) + start,
                      image.index_select(0, lexicographic), dist2.index_select(0, lexicographic)))
    return tuple(torch.cat(column) for column in zip(*parts))


def _flat_bin(index: Tensor, nbins: Tensor) -> Tensor:
    return (index[:, 0] * nbins[1] + index[:, 1]) * nbins[2] + index[:, 2]


def _finish(space: _Space, i: Tensor, j: Tensor, image: Tensor, dist2: Tensor | None, max_neighbours: int | None):
    """edge_index (2,E) and shifts relative to the unwrapped positions, capped to max_neighbours per atom."""
    if max_neighbours is not None:
        keep = torch.nonzero(_nearest(i, j, image, dist2, max_neighbours)).squeeze(1)
        i, j, image = i.index_select(0, keep), j.index_select(0, keep), image.index_select(0, keep)
    shifts = image.to(space.frac.dtype)
    if space.wrapped:
        shifts = shifts + space.wrap.index_select(0, i) - space.wrap.index_select(0, j)
    return torch.stack([i, j]), shifts


def _nearest(i: Tensor, j: Tensor, image: Tensor, dist2: Tensor, max_neighbours: int) -> Tensor:
    """Mask keeping, per atom i, the max_neighbours nearest edges; edges arrive in (i, j, image) lexicographic order,
    so stable sorts by distance then by i break ties by j then image."""
    by_dist = torch.sort(dist2, stable=True).indices
    order = by_dist.index_select(0, torch.sort(i.index_select(0, by_dist), stable=True).indices)
    sorted_i = i.index_select(0, order)
    new_atom = torch.ones_like(sorted_i, dtype=torch.bool)
    new_atom[1:] = sorted_i[1:] != sorted_i[:-1]
    position = torch.arange(i.numel(), device=i.device)
    group_start = torch.cummax(torch.where(new_atom, position, torch.zeros_like(position)), dim=0).values
    keep = torch.zeros_like(i, dtype=torch.bool)
    keep[order[position - group_start < max_neighbours]] = True
    return keep
