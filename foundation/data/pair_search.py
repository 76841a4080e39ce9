"""The all-pairs search of foundation.data.graph: per structure, every pair i <= j, its ranges of image shifts and
exact runs of S2 (see that module's docstring), laid out in lexicographic (i, j, shift) order without sorting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

# Columns of SearchSpace.constants, per atom. In the frame where the lattice rows are triangular,
# a0 = (x0, y0, z0), a1 = (0, y1, z1), a2 = (0, 0, z2), fractional coordinates f give
# |f0 a0 + f1 a1 + f2 a2|^2 = (x0 f0)^2 + (y0 f0 + y1 f1)^2 + (z0 f0 + z1 f1 + z2 f2)^2. Per atom with fractional
# coordinates (f0, f1, f2): f0, f0 -+ reach0 (the S0 range bounds of its pairs), t1 = f1 + ey f0 and
# t2 = f2 + kz0 f0 + kz f1 (pair differences of which are the centres of the S1 and S2 ranges); of its structure:
# ey = y0 / y1, kz0 = z0 / z2, kz = z1 / z2, cy = (cutoff / y1)^2, xy = (x0 / y1)^2, rr = (y1 / z2)^2.
_F0, _LOW0, _HIGH0, _T1, _T2, _EY, _KZ0, _KZ, _CY, _XY, _RR = range(11)


@dataclass
class SearchSpace:
    """What the searches share: per atom the fractional coordinates in the search frame (not wrapped) as columns and
    the constants above, its structure; per structure the reach (the cutoff in fractional units per axis, (B,3)),
    the search frame (B,3,3), the triangular frame (B,6: x0, y0, y1, z0, z1, z2), the metric (B,6, see
    metric_dist2), pbc; the cutoff, and rounding margins."""

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
        self.frac_columns = tuple(
            torch.addcmul(torch.addcmul(p0 * per_atom[k], p1, per_atom[3 + k]), p2, per_atom[6 + k])
            for k in range(3)
        )
        # The triangular frame: e_z along a2, e_y in the plane of a1 and a2 (cross products, not differences, where
        # Gram-Schmidt would cancel).
        a0, a1, a2 = self.frame.unbind(1)
        z2 = torch.linalg.vector_norm(a2, dim=1)
        z1, z0 = (a1 * a2).sum(dim=1) / z2, (a0 * a2).sum(dim=1) / z2
        face0 = torch.linalg.vector_norm(self.faces[:, 0], dim=1)  # |a1 x a2|
        y1 = face0 / z2
        y0 = -(self.faces[:, 0] * self.faces[:, 1]).sum(dim=1) / (
            z2 * face0
        )  # (a2 x a1).(a2 x a0) / (z2 |a1 x a2|)
        x0 = self.volume.abs() / face0
        self.triangular = torch.stack([x0, y0, y1, z0, z1, z2], dim=1)
        reach0, ey, kz0, kz, cy, xy, rr = (
            column.index_select(0, self.batch)
            for column in (
                self.reach[:, 0],
                y0 / y1,
                z0 / z2,
                z1 / z2,
                (self.cutoff / y1) ** 2,
                (x0 / y1) ** 2,
                (y1 / z2) ** 2,
            )
        )
        f0, f1, f2 = self.frac_columns
        self.constants = (
            f0,
            f0 - reach0,
            f0 + reach0,
            torch.addcmul(f1, ey, f0),
            torch.addcmul(torch.addcmul(f2, kz0, f0), kz, f1),
            ey,
            kz0,
            kz,
            cy,
            xy,
            rr,
        )
        metric = self.frame @ self.frame.transpose(1, 2)
        self.metric6 = metric[:, [0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]] * self.frame.new_tensor(
            [1, 1, 1, 2, 2, 2]
        )
        # Rounding margins of the S1 and S2 ranges, in lattice units: near a tangent, the square root of the
        # rounding of a squared length ~ eps * cutoff^2, over the axis' lattice spacing.
        root_eps = 10 * torch.finfo(self.positions.dtype).eps ** 0.5
        self.margin1 = root_eps * (1 + float((self.cutoff / y1.abs()).max())) if y1.numel() else 0.0
        self.margin2 = root_eps * (1 + float((self.cutoff / z2.abs()).max())) if z2.numel() else 0.0
        if self.partial:  # per atom, the range a shift may take on each axis: any on periodic axes, 0 on the others
            infinite = torch.full_like(self.reach, float("inf"))
            low, high = torch.where(self.pbc, -infinite, 0.0), torch.where(self.pbc, infinite, 0.0)
            self.bounds = tuple(
                column.index_select(0, self.batch) for column in torch.cat([low, high], dim=1).T
            )


def all_pairs_search(
    space: SearchSpace, structs: Tensor, natoms: Tensor, offsets: Tensor, reserve, keep_dist2: bool
):
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
    begin = int(offsets[structs[0]])
    end = int(offsets[structs[-1]] + natoms[structs[-1]])
    own = _own_runs(space, begin, end, natoms, offsets)
    if own is None:
        return *reserve(0), space.positions.new_zeros(0) if keep_dist2 else None
    count, table, i_run, j_run, self_run = _in_order(own, begin)
    # Level E, one entry per edge.
    index_dtype = table.dtype
    pe, e_bounds = owners(count)
    first_e = e_bounds[:-1]
    table[:, 2] -= first_e.to(index_dtype)
    edge_index, out = reserve(pe.numel())
    torch.index_select(i_run, 0, pe, out=edge_index[0])
    torch.index_select(j_run, 0, pe, out=edge_index[1])
    shifts = (
        torch.index_select(table, 0, pe, out=out)
        if out.dtype == index_dtype
        else table.index_select(0, pe)
    )
    shifts[:, 2] += torch.arange(pe.numel(), device=pe.device, dtype=index_dtype)
    # After the cut, the S2 >= 0 of an atom's own run sit one place further on (runs without them may be gone).
    tail, tail_bounds = owners(own.self_tail)
    after = _runs(first_e.index_select(0, self_run) - own.self_lo, tail_bounds[:-1], tail)
    shifts[:, 2].index_add_(0, after, torch.ones_like(after, dtype=index_dtype))
    if shifts is not out:
        out.copy_(shifts)
    return edge_index, out, _squared_lengths(space, edge_index, out) if keep_dist2 else None


class _OwnRuns(NamedTuple):
    """The runs of S2 with edges of a chunk's pairs a <= b, in (a, b, S0, S1) order (indices int32, atoms counted
    from the chunk's first): per run its edge count, (S0, S1, first S2) as a float64 row, a and b; the first run of
    each pair and of each atom (n_pairs + 1, n + 1 bounds); per atom its first pair and the first atom of its
    structure; per atom its own zero-shift run (pair (a, a), S0 = S1 = 0: the run's index, first S2, and how many
    S2 >= 0 it held before the cut)."""

    count: Tensor
    table: Tensor
    i: Tensor
    j: Tensor
    of_pair: Tensor
    of_atom: Tensor
    first_pair: Tensor
    first_atom: Tensor
    self_run: Tensor
    self_lo: Tensor
    self_tail: Tensor


def _own_runs(
    space: SearchSpace, begin: int, end: int, natoms: Tensor, offsets: Tensor
) -> _OwnRuns | None:
    """The runs of the pairs a <= b of atoms begin to end - 1 (whole structures), by levels P (pairs), A (pair, S0)
    and B (pair, S0, S1); None if there are none. Each level's working arrays are freed on return (a smaller heap
    per chunk: fewer pages faulted afresh)."""
    device, index_dtype = (
        space.positions.device,
        torch.float64,
    )  # shifts are counted in float64: exact integers
    index = torch.int32  # indices within a chunk: half the memory traffic of int64
    atoms = torch.arange(begin, end, device=device, dtype=index)
    atom_first = offsets.index_select(0, space.batch[begin:end]).to(
        index
    )  # the first atom of each atom's structure
    constants = [c[begin:end] for c in space.constants]
    bounds = [c[begin:end] for c in space.bounds] if space.partial else None
    # Level P, one entry per pair (a, b), a <= b: owner = a - begin.
    owner, pair_bounds = owners(
        atom_first + natoms.index_select(0, space.batch[begin:end]).to(index) - atoms
    )
    first_pair = pair_bounds[:-1]
    j = torch.arange(owner.numel(), device=device, dtype=index) + (atoms - first_pair).index_select(
        0, owner
    )
    f0_j = space.constants[_F0].index_select(0, j)
    lo0 = constants[_LOW0].index_select(0, owner).sub_(f0_j).ceil_()
    hi0 = constants[_HIGH0].index_select(0, owner).sub_(f0_j).floor_()
    if space.partial:
        lo0, hi0 = _clamp(lo0, hi0, bounds, 0, owner)
    count0 = torch.sub(hi0, lo0).add_(1).clamp_(min=0).to(index)
    ds0 = f0_j.sub_(constants[_F0].index_select(0, owner))
    center1_p = constants[_T1].index_select(0, owner).sub_(space.constants[_T1].index_select(0, j))
    center2_p = constants[_T2].index_select(0, owner).sub_(space.constants[_T2].index_select(0, j))
    # Level A, one entry per (pair, S0).
    pa, a_bounds = owners(count0)
    first_a = a_bounds[:-1]
    oa = owner.index_select(0, pa)
    shift0 = _runs(lo0.to(index_dtype), first_a, pa)
    s0 = shift0.to(ds0.dtype)
    f0 = ds0.index_select(0, pa).add_(s0)
    rem1 = (
        constants[_CY]
        .index_select(0, oa)
        .addcmul_(constants[_XY].index_select(0, oa), f0.square_(), value=-1)
    )
    center1 = center1_p.index_select(0, pa).addcmul_(
        constants[_EY].index_select(0, oa), s0, value=-1
    )
    half1 = rem1.clamp(min=0).sqrt_().add_(space.margin1)  # extra S1 are harmless
    lo1, hi1 = torch.sub(center1, half1).ceil_(), half1.add_(center1).floor_()
    if space.partial:
        lo1, hi1 = _clamp(lo1, hi1, bounds, 1, oa)
    count1 = torch.sub(hi1, lo1).add_(1).clamp_(min=0).to(index)
    center2_a = center2_p.index_select(0, pa).addcmul_(
        constants[_KZ0].index_select(0, oa), s0, value=-1
    )
    # Level B, one entry per (pair, S0, S1): the run of S2 with |vec| < cutoff.
    pb, b_bounds = owners(count1)
    first_b = b_bounds[:-1]
    ob = oa.index_select(0, pb)
    shift1 = _runs(lo1.to(index_dtype), first_b, pb)
    s1 = shift1.to(ds0.dtype)
    u = center1.index_select(0, pb).neg_().add_(s1)
    rem2 = rem1.index_select(0, pb).addcmul_(u, u, value=-1).clamp_(min=0)
    half2 = rem2.mul_(constants[_RR].index_select(0, ob)).sqrt_()
    center2 = center2_a.index_select(0, pb).addcmul_(
        constants[_KZ].index_select(0, ob), s1, value=-1
    )
    # The run's ends are the roots' strict interior; where a root lies within rounding of an integer, the ends come
    # from the squared length itself (as near a tangent the roots carry errors ~sqrt(eps)).
    below, above = center2 - half2, center2.add_(half2)
    lo2, hi2 = (
        torch.sub(below, space.margin2).floor_().add_(1),
        torch.add(above, space.margin2).ceil_().sub_(1),
    )
    unsure = torch.nonzero(
        (below.add_(space.margin2) >= lo2).logical_or_(above.sub_(space.margin2) <= hi2)
    ).squeeze(1)
    if space.partial:
        lo2, hi2 = _clamp(lo2, hi2, bounds, 2, ob)
    if unsure.numel():
        pairs = pa.index_select(0, pb.index_select(0, unsure))
        _exact_ends(
            space,
            unsure,
            lo2,
            hi2,
            owner.index_select(0, pairs) + begin,
            j.index_select(0, pairs),
            s0.index_select(0, pb.index_select(0, unsure)),
            s1.index_select(0, unsure),
        )
    count2 = torch.sub(hi2, lo2).add_(1).clamp_(min=0).to(index)
    # An atom's own zero shift: its pair (a, a) comes first, then S0 = 0, then S1 = 0; cut out of the run of S2.
    self_a = first_a.index_select(0, first_pair) - lo0.index_select(0, first_pair).to(index)
    self_b = first_b.index_select(0, self_a) - lo1.index_select(0, self_a).to(index)
    count2.index_add_(0, self_b, torch.full_like(self_b, -1))
    # The runs: the B entries with edges; those of each pair, and of each atom as the first atom of its pairs.
    nonempty = count2 > 0
    kept = torch.nonzero(nonempty).squeeze(1)
    if not kept.numel():
        return None
    runs_before = _exclusive_sums(nonempty, index)  # per B entry, and the total
    run_of_pair = runs_before.index_select(0, b_bounds.index_select(0, a_bounds))
    own_first = run_of_pair.index_select(0, pair_bounds)
    run_b = pb.index_select(0, kept)
    own_count = count2.index_select(0, kept)
    own = shift0.new_empty(
        kept.numel(), 3
    )  # a run: S0, S1, its first S2 (gathered into the columns: no stack)
    for column, (values, rows) in enumerate(
        ((shift0, run_b), (shift1, kept), (lo2.to(index_dtype), kept))
    ):
        torch.index_select(values, 0, rows, out=own[:, column])
    own_i = ob.index_select(0, kept)
    own_j = j.index_select(0, pa.index_select(0, run_b)).sub_(begin)
    self_k = runs_before.index_select(0, self_b).clamp_(max=kept.numel() - 1)
    return _OwnRuns(
        own_count,
        own,
        own_i,
        own_j,
        run_of_pair,
        own_first,
        first_pair,
        atom_first - begin,
        self_k,
        lo2.index_select(0, self_b).to(index),
        hi2.index_select(0, self_b).to(index).clamp_(min=0),
    )


def _in_order(own: _OwnRuns, begin: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The runs of all pairs in (i, j, S) order: the own runs of (a, b), a <= b, and for b < a those of (b, a)
    reversed and negated; per run its edge count, (S0, S1, first S2) as a float64 row, i and j (int64, with the
    chunk's first atom ``begin`` added), and where each atom's own zero-shift run went."""
    device, index, n, kept = (
        own.count.device,
        own.count.dtype,
        own.first_atom.numel(),
        own.count.numel(),
    )
    # Mirrored pairs (a, b) for b < a, row by row, each with the runs of (b, a) reversed and negated.
    mirror_owner, mirror_bounds = owners(
        torch.arange(n, device=device, dtype=index) - own.first_atom
    )
    b = (
        (own.first_atom - mirror_bounds[:-1])
        .index_select(0, mirror_owner)
        .add_(torch.arange(mirror_owner.numel(), device=device, dtype=index))
    )
    source_pair = own.first_pair.index_select(0, b).add_(mirror_owner).sub_(b)
    mirror_counts = own.of_pair.diff().index_select(0, source_pair)
    mirror_pair, mirror_run_bounds = owners(mirror_counts)
    mirror_runs = torch.arange(mirror_pair.numel(), device=device, dtype=index)
    last = (
        own.of_pair.index_select(0, source_pair)
        .add_(mirror_counts)
        .sub_(1)
        .add_(mirror_run_bounds[:-1])
    )
    source = last.index_select(0, mirror_pair).sub_(mirror_runs)
    mirror_first = mirror_run_bounds.index_select(0, mirror_bounds)
    mirror_count = own.count.index_select(0, source)
    mirrored = own.table.index_select(0, source).neg_()
    mirrored[:, 2] -= mirror_count - 1  # the run's last S2, negated
    # Per atom: its mirrored runs, then its own runs.
    own_runs, mirror_runs_of_atom = own.of_atom.diff(), mirror_first.diff()
    place = torch.cumsum(own_runs + mirror_runs_of_atom, 0) - own_runs
    place_own = (
        (place - own.of_atom[:-1])
        .index_select(0, own.i)
        .add_(torch.arange(kept, device=device, dtype=index))
        .long()
    )
    mirror_i = mirror_owner.index_select(0, mirror_pair)
    place_mirror = (
        (place - mirror_runs_of_atom - mirror_first[:-1])
        .index_select(0, mirror_i)
        .add_(mirror_runs)
        .long()
    )
    runs = kept + mirror_runs.numel()

    def merged(own_part: Tensor, mirror_part: Tensor) -> Tensor:
        out = own_part.new_empty((runs,) + tuple(own_part.shape[1:]))
        return out.index_copy_(0, place_own, own_part).index_copy_(0, place_mirror, mirror_part)

    return (
        merged(own.count, mirror_count),
        merged(own.table, mirrored),
        merged(own.i, mirror_i).long().add_(begin),
        merged(own.j, b.index_select(0, mirror_pair)).long().add_(begin),
        place_own.index_select(0, own.self_run),
    )


def _exact_ends(
    space: SearchSpace,
    entries: Tensor,
    lo2: Tensor,
    hi2: Tensor,
    i: Tensor,
    j: Tensor,
    s0: Tensor,
    s1: Tensor,
) -> None:
    """The runs of S2 of a few (pair, S0, S1) ``entries`` narrowed in place to the S2 in [lo2, hi2] whose squared
    length, f^T G f with the cell's metric G, is below the cutoff's (empty: lo2 > hi2)."""
    candidate, bounds = owners(
        (hi2.index_select(0, entries) - lo2.index_select(0, entries) + 1).clamp_(min=0).long()
    )
    s2 = _runs(lo2.index_select(0, entries), bounds[:-1], candidate)
    i, j = i.index_select(0, candidate), j.index_select(0, candidate)
    f = torch.stack(
        [
            column.index_select(0, j) - column.index_select(0, i) + s.index_select(0, candidate)
            for column, s in zip(space.frac_columns, (s0, s1))
        ]
        + [
            space.frac_columns[2].index_select(0, j) - space.frac_columns[2].index_select(0, i) + s2
        ],
        dim=1,
    )
    metric = space.metric6.index_select(0, space.batch.index_select(0, i))
    inside = torch.nonzero(metric_dist2(f, metric) < space.cutoff**2)
    candidate, s2 = (
        candidate.index_select(0, inside.squeeze(1)),
        s2.index_select(0, inside.squeeze(1)),
    )
    low = torch.full_like(entries, float("inf"), dtype=lo2.dtype).scatter_reduce_(
        0, candidate, s2, "amin"
    )
    high = torch.full_like(entries, -float("inf"), dtype=hi2.dtype).scatter_reduce_(
        0, candidate, s2, "amax"
    )
    lo2.index_copy_(0, entries, low)
    hi2.index_copy_(0, entries, high)


def _squared_lengths(space: SearchSpace, edge_index: Tensor, shifts: Tensor) -> Tensor:
    """|vec|^2 of edges as a sum of squares in the triangular frame (so that symmetric ties stay exact)."""
    i, j = edge_index
    f0, f1, f2 = (
        column.index_select(0, j) - column.index_select(0, i) + shifts[:, axis]
        for axis, column in enumerate(space.frac_columns)
    )
    x0, y0, y1, z0, z1, z2 = space.triangular.index_select(
        0, space.batch.index_select(0, i)
    ).unbind(1)
    return (x0 * f0) ** 2 + (y0 * f0 + y1 * f1) ** 2 + (z0 * f0 + z1 * f1 + z2 * f2) ** 2


def _clamp(
    low: Tensor, high: Tensor, bounds: list, axis: int, atom: Tensor
) -> tuple[Tensor, Tensor]:
    """A shift range [low, high] limited to 0 on non-periodic axes (bounds: per atom, the low then the high limits)."""
    return (
        torch.maximum(low, bounds[axis].index_select(0, atom)),
        torch.minimum(high, bounds[3 + axis].index_select(0, atom)),
    )


def owners(count: Tensor) -> tuple[Tensor, Tensor]:
    """For counts c_0, c_1, ... >= 0: the owner o of each of their sum(count) items, in order, and the bounds of the
    owners' items (exclusive prefix sums, then the total: owner o has items bounds[o] to bounds[o + 1] - 1), in the
    counts' dtype."""
    bounds = _exclusive_sums(count, count.dtype)
    total = int(bounds[-1])
    marks = torch.zeros(total + 1, dtype=count.dtype, device=count.device)
    marks.index_add_(0, bounds[:-1], torch.ones_like(count))
    marks[0] -= 1
    return marks[:total].cumsum_(0), bounds


def _exclusive_sums(values: Tensor, dtype: torch.dtype) -> Tensor:
    """0, v_0, v_0 + v_1, ..., sum(v): n + 1 prefix sums."""
    sums = torch.zeros(values.numel() + 1, dtype=dtype, device=values.device)
    torch.cumsum(values, 0, dtype=dtype, out=sums[1:])
    return sums


def _runs(start: Tensor, first: Tensor, owner: Tensor) -> Tensor:
    """start[o] + r for the r-th item of each owner o (items in owner order, ``first`` the owners' first items)."""
    return (
        (start - first.to(start.dtype))
        .index_select(0, owner)
        .add_(torch.arange(owner.numel(), device=owner.device, dtype=start.dtype))
    )


def metric_dist2(f: Tensor, g6: Tensor) -> Tensor:
    """Squared length of fractional vectors f (E,3) under metric coefficients g6 (E,6) or (6,)."""
    f0, f1, f2 = f.unbind(1)
    g = g6.unbind(-1)
    return f0 * (g[0] * f0 + g[3] * f1 + g[4] * f2) + f1 * (g[1] * f1 + g[5] * f2) + g[2] * f2 * f2
