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

import torch
from torch import Tensor

# Pairs (i, j) examined at once by the all-pairs search; bounds its working memory (~100 bytes per pair).
MAX_PAIRS_PER_CHUNK = 1 << 21
# Structures at least this large use the cell list (all-pairs would cost N^2).
CELL_LIST_MIN_ATOMS = 1024


def radius_graph_pbc(positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor, cutoff: float,
                     max_neighbors: int | None = None) -> tuple[Tensor, Tensor]:
    """All (i, j, shift) within ``cutoff`` of a batch of (periodic) structures, in ASE's 'ijS' convention.

    positions (N,3); cell (B,3,3), rows are lattice vectors; pbc (B,3) bool; batch (N,) long, the structure index of
    each atom, non-decreasing. Returns edge_index (2,E) long, sorted by i, and shifts (E,3) in positions' dtype with
    integer values, such that vec = positions[j] - positions[i] + shifts @ cell[batch[i]] has 0 < |vec| < cutoff
    (self-images included, i == j with zero shift never). ``max_neighbors`` keeps the nearest per atom i; ties are
    broken by j, then by shift (lexicographic), so the result is deterministic. Distances are evaluated in the
    positions' dtype: pass float64 to get ASE's edge set exactly.
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    if max_neighbors is not None and max_neighbors < 1:
        raise ValueError(f"max_neighbors must be >= 1 or None, got {max_neighbors}")
    if not positions.is_floating_point():
        raise TypeError(f"positions must be a floating point tensor, got {positions.dtype}")
    with torch.no_grad():
        pos = positions.detach()
        cell = cell.detach().to(pos.dtype).reshape(-1, 3, 3)
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
        metric = frame @ frame.transpose(1, 2)
        natoms = torch.bincount(batch, minlength=cell.shape[0])
        offsets = torch.cumsum(natoms, 0) - natoms

        parts = [_all_pairs_search(chunk, frac, reach, metric, pbc, natoms, offsets, cutoff)
                 for chunk in _pair_chunks(natoms)]
        big = torch.nonzero(natoms >= CELL_LIST_MIN_ATOMS).flatten()
        if big.numel():
            parts += [_cell_list_search(int(b), frac, reach, metric, pbc, natoms, offsets, cutoff) for b in big.tolist()]
        i, j, image, dist2 = (torch.cat(x) for x in zip(*parts)) if parts else _empty(pos)
        if big.numel() and len(parts) > 1:
            order = torch.argsort(i, stable=True)
            i, j, image, dist2 = i[order], j[order], image[order], dist2[order]
        if max_neighbors is not None:
            keep = _nearest(i, j, image, dist2, max_neighbors, pos.shape[0])
            i, j, image = i[keep], j[keep], image[keep]
        shifts = image + (wrap[i] - wrap[j]).long()
        return torch.stack([i, j]), shifts.to(pos.dtype)


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


def _pair_chunks(natoms: Tensor) -> list[Tensor]:
    """The structures searched all-pairs, grouped in consecutive chunks of about MAX_PAIRS_PER_CHUNK pairs."""
    cost = torch.where(natoms < CELL_LIST_MIN_ATOMS, natoms * natoms, torch.zeros_like(natoms))
    structs = torch.nonzero(cost > 0).flatten()
    if not structs.numel():
        return []
    cost = cost[structs]
    chunk_of = torch.div(torch.cumsum(cost, 0) - cost, MAX_PAIRS_PER_CHUNK, rounding_mode="floor")
    sizes = torch.unique_consecutive(chunk_of, return_counts=True)[1]
    return list(torch.split(structs, sizes.tolist()))


def _all_pairs_search(structs, frac, reach, metric, pbc, natoms, offsets, cutoff):
    """Edges of ``structs``: every ordered pair (i, j) of a structure, each with its box of image shifts."""
    n = natoms[structs]
    pairs = n * n
    unit = torch.repeat_interleave(torch.arange(structs.numel(), device=n.device), pairs)
    local = torch.arange(unit.numel(), device=n.device) - (torch.cumsum(pairs, 0) - pairs)[unit]
    nu = n[unit]
    first = offsets[structs][unit]
    i = first + torch.div(local, nu, rounding_mode="floor")
    j = first + local % nu
    return _expand_images(i, j, structs[unit], frac[j] - frac[i], reach, metric, pbc, cutoff)


def _cell_list_search(b, frac, reach, metric, pbc, natoms, offsets, cutoff):
    """Edges of one large structure by a cell list: atoms binned into sub-cells of the (search) cell at least
    ~cutoff/2 wide along each face normal; each atom i visits the sub-cells its cutoff box can reach."""
    start, n = int(offsets[b]), int(natoms[b])
    s = frac[start:start + n]
    device = s.device
    r = reach[b]
    periodic = pbc[b]
    lo_s, hi_s = s.min(dim=0).values, s.max(dim=0).values
    # Non-periodic axes: bins cover the atoms' extent; periodic axes: the unit interval.
    origin = torch.where(periodic, torch.zeros_like(lo_s), lo_s)
    span = torch.where(periodic, torch.ones_like(hi_s), (hi_s - lo_s).clamp(min=1e-12))
    nbins = torch.clamp(torch.floor(span / (r / 2)), min=1).long()
    nbins = torch.minimum(nbins, torch.full_like(nbins, max(1, round(n ** (1 / 3)) * 2)))
    width = span / nbins
    cell_of = torch.minimum(torch.floor((s - origin) / width).long(), nbins - 1)
    flat = (cell_of[:, 0] * nbins[1] + cell_of[:, 1]) * nbins[2] + cell_of[:, 2]
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=int(nbins.prod()))
    first = torch.cumsum(counts, 0) - counts
    # Per atom i, the range of (unwrapped) bin indices its cutoff box can reach on each axis.
    lo = torch.floor((s - r - origin) / width).long()
    hi = torch.floor((s + r - origin) / width).long()
    lo = torch.where(periodic, lo, lo.clamp(min=0))
    hi = torch.where(periodic, hi, torch.minimum(hi, nbins - 1))
    size = (hi - lo + 1).clamp(min=0)
    visits = size.prod(dim=1)
    atom = torch.repeat_interleave(torch.arange(n, device=device), visits)
    k = torch.arange(atom.numel(), device=device) - (torch.cumsum(visits, 0) - visits)[atom]
    sz = size[atom]
    u2 = lo[atom, 2] + k % sz[:, 2]
    k = torch.div(k, sz[:, 2], rounding_mode="floor")
    u1 = lo[atom, 1] + k % sz[:, 1]
    u0 = lo[atom, 0] + torch.div(k, sz[:, 1], rounding_mode="floor")
    u = torch.stack([u0, u1, u2], dim=1)
    image = torch.div(u, nbins, rounding_mode="floor")
    binned = u - image * nbins
    target = (binned[:, 0] * nbins[1] + binned[:, 1]) * nbins[2] + binned[:, 2]
    occupants = counts[target]
    visit = torch.repeat_interleave(torch.arange(atom.numel(), device=device), occupants)
    m = torch.arange(visit.numel(), device=device) - (torch.cumsum(occupants, 0) - occupants)[visit]
    i_local = atom[visit]
    j_local = order[first[target[visit]] + m]
    image = image[visit]
    f = s[j_local] - s[i_local] + image.to(s.dtype)
    g = metric[b]
    dist2 = torch.einsum("ek,kl,el->e", f, g, f)
    keep = (dist2 < cutoff * cutoff) & ((i_local != j_local) | (image != 0).any(dim=1))
    i_local, j_local, image, dist2 = i_local[keep], j_local[keep], image[keep], dist2[keep]
    # Lexicographic (i, j, image) order, the same order the all-pairs search produces.
    key = torch.argsort(_lexicographic_key(i_local, j_local, image, n), stable=True)
    return i_local[key] + start, j_local[key] + start, image[key], dist2[key]


def _lexicographic_key(i: Tensor, j: Tensor, image: Tensor, n: int) -> Tensor:
    span = int(image.abs().max()) * 2 + 1 if image.numel() else 1
    shifted = image + span // 2
    key = (i * n + j) * span + shifted[:, 0]
    return (key * span + shifted[:, 1]) * span + shifted[:, 2]


def _expand_images(i, j, struct, ds, reach, metric, pbc, cutoff):
    """For pairs (i, j) of structure ``struct`` with wrapped fractional difference ``ds``, the image shifts S with
    |ds + S| <= reach on every axis (S = 0 on non-periodic axes), kept where the distance is below the cutoff."""
    r = reach[struct]
    periodic = pbc[struct]
    lo = torch.ceil(-r - ds)
    hi = torch.floor(r - ds)
    zero = torch.zeros_like(lo)
    lo = torch.where(periodic, lo, torch.maximum(lo, zero)).long()
    hi = torch.where(periodic, hi, torch.minimum(hi, zero)).long()
    size = (hi - lo + 1).clamp(min=0)
    count = size.prod(dim=1)
    live = torch.nonzero(count).flatten()
    i, j, struct, ds, lo, size, count = i[live], j[live], struct[live], ds[live], lo[live], size[live], count[live]
    pair = torch.repeat_interleave(torch.arange(i.numel(), device=i.device), count)
    k = torch.arange(pair.numel(), device=i.device) - (torch.cumsum(count, 0) - count)[pair]
    sz = size[pair]
    s2 = k % sz[:, 2]
    k = torch.div(k, sz[:, 2], rounding_mode="floor")
    s1 = k % sz[:, 1]
    s0 = torch.div(k, sz[:, 1], rounding_mode="floor")
    image = lo[pair] + torch.stack([s0, s1, s2], dim=1)
    f = ds[pair] + image.to(ds.dtype)
    g = metric[struct][pair]
    dist2 = (g[:, 0, 0] * f[:, 0] ** 2 + g[:, 1, 1] * f[:, 1] ** 2 + g[:, 2, 2] * f[:, 2] ** 2
             + 2 * (g[:, 0, 1] * f[:, 0] * f[:, 1] + g[:, 0, 2] * f[:, 0] * f[:, 2] + g[:, 1, 2] * f[:, 1] * f[:, 2]))
    ip, jp = i[pair], j[pair]
    keep = (dist2 < cutoff * cutoff) & ((ip != jp) | (image != 0).any(dim=1))
    return ip[keep], jp[keep], image[keep], dist2[keep]


def _nearest(i: Tensor, j: Tensor, image: Tensor, dist2: Tensor, max_neighbors: int, n: int) -> Tensor:
    """Mask keeping, per atom i, the max_neighbors nearest edges; edges arrive in (i, j, image) lexicographic order,
    so stable sorts by distance then by i break ties by j then image."""
    by_dist = torch.argsort(dist2, stable=True)
    order = by_dist[torch.argsort(i[by_dist], stable=True)]
    counts = torch.bincount(i, minlength=n)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(i.numel(), device=i.device) - start[i[order]]
    keep = torch.zeros_like(i, dtype=torch.bool)
    keep[order[rank < max_neighbors]] = True
    return keep


def _empty(pos: Tensor):
    long = torch.zeros(0, dtype=torch.long, device=pos.device)
    return long, long, torch.zeros(0, 3, dtype=torch.long, device=pos.device), pos.new_zeros(0)
