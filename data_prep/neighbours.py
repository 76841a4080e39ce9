"""Periodic pair distances for validation (closest pair) and statistics (neighbours within a cutoff).

Brute force over lattice shifts, vectorised with numpy: pair differences are wrapped into [-0.5, 0.5) in
fractional coordinates along periodic axes, then only shifts |s_i| <= floor(cutoff / d_i + 1/2) can hold an
image within the cutoff (d_i: spacing of the lattice planes of axis i). For a cutoff below half the plane
spacing that is the minimum image alone, so the closest-pair check costs one N x N pass for ordinary cells.
Cells that are singular along a periodic axis have no well-defined images: callers reject them first;
non-periodic rows of the cell are ignored.
"""

from __future__ import annotations

import itertools

import numpy as np

_MAX_VECTORS = 1 << 21  # pair vectors evaluated per block (bounds memory for large frames)


def complete_cell(cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """The cell with its non-periodic rows replaced by unit vectors orthogonal to the periodic ones, so it
    is invertible whenever the periodic vectors are independent (nothing wraps along those rows)."""
    basis = np.array(cell, dtype=np.float64)
    if periodic.all():
        return basis
    kept = [basis[i] for i in range(3) if periodic[i]]
    for i in range(3):
        if periodic[i]:
            continue
        for trial in np.eye(3):
            v = trial - sum((trial @ k) / (k @ k) * k for k in kept) if kept else trial
            if np.linalg.norm(v) > 1e-6:
                basis[i] = v / np.linalg.norm(v)
                kept.append(basis[i])
                break
    return basis


def pair_distances(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> np.ndarray:
    """Distances of all ordered pairs (i, j, image) closer than `cutoff`, self pair (i, i, 0) excluded."""
    positions = np.asarray(positions, dtype=np.float64)
    periodic = np.asarray(pbc, dtype=bool)
    n = len(positions)
    if periodic.any():
        basis = complete_cell(cell, periodic)
        inverse = np.linalg.inv(basis)
        coords = positions @ inverse
        spacing_inv = np.linalg.norm(inverse, axis=0)  # |b_i| = 1 / d_i
        reach = np.where(periodic, np.floor(cutoff * spacing_inv + 0.5), 0).astype(int)
        shifts = np.array(list(itertools.product(*(range(-r, r + 1) for r in reach))), dtype=np.float64)
    else:
        coords, basis = positions, np.eye(3)
        shifts = np.zeros((1, 3))
    if len(shifts) == 1:  # minimum image suffices: no shift axis
        delta = coords[None, :, :] - coords[:, None, :]
        if periodic.any():
            delta[..., periodic] -= np.round(delta[..., periodic])
        vectors = delta @ basis
        d2 = np.einsum("ijk,ijk->ij", vectors, vectors)
        np.fill_diagonal(d2, np.inf)
        return np.sqrt(d2[d2 < cutoff * cutoff])
    shift_vectors = shifts @ basis
    zero_shift = int(np.flatnonzero(~shifts.any(axis=1))[0])
    rows = max(1, _MAX_VECTORS // max(1, n * len(shifts)))
    found = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        delta = coords[None, :, :] - coords[start:stop, None, :]
        if periodic.any():
            delta[..., periodic] -= np.round(delta[..., periodic])
        vectors = (delta @ basis)[:, :, None, :] + shift_vectors[None, None, :, :]
        d2 = np.einsum("ijsk,ijsk->ijs", vectors, vectors)
        local = np.arange(stop - start)
        d2[local, local + start, zero_shift] = np.inf
        found.append(np.sqrt(d2[d2 < cutoff * cutoff]))
    return np.concatenate(found) if found else np.zeros(0)


def closest_pair(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """The shortest interatomic distance if it is below `cutoff`, else inf."""
    d = pair_distances(positions, cell, pbc, cutoff)
    return float(d.min()) if d.size else float("inf")


def count_neighbours(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> int:
    """Number of ordered neighbour pairs within `cutoff` (images included): sum over atoms of neighbours."""
    return int(pair_distances(positions, cell, pbc, cutoff).size)
