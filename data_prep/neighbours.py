"""Periodic pair distances for validation (closest pair) and statistics (neighbours within a cutoff).

Positions are wrapped into the cell along periodic axes; an image within the cutoff then needs lattice
shifts |s_i| <= floor(cutoff / d_i) + 1 at most (d_i: spacing of the lattice planes of axis i). For the
closest-pair check with a cutoff below half of every plane spacing the minimum image convention is exact
(a vector shorter than d_i / 2 has fractional components inside (-1/2, 1/2)), so small frames take one
N x N numpy pass; larger frames and neighbour counts use scipy's KD-tree over the shifted images.
Non-periodic rows of the cell are ignored; a cell singular along a periodic axis is rejected by callers first.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree

_DENSE_MAX_ATOMS = 128  # up to this size the N x N minimum-image pass is faster than a tree


def complete_cell(cell: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """The cell with its non-periodic rows replaced by unit vectors orthogonal to the periodic ones, so it
    is invertible whenever the periodic vectors are independent (nothing wraps along those rows)."""
    basis = np.array(cell, dtype=np.float64)
    if periodic.all():
        return basis
    span = np.linalg.qr(basis[periodic].T)[0] if periodic.any() else np.zeros((3, 0))
    for i in np.flatnonzero(~periodic):
        for trial in np.eye(3):
            v = trial - span @ (span.T @ trial)
            if np.linalg.norm(v) > 1e-6:
                basis[i] = v / np.linalg.norm(v)
                span = np.column_stack([span, basis[i]])
                break
    return basis


def inverse_3x3(m: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 matrix by cofactors (much cheaper than np.linalg.inv for one small matrix)."""
    (a, b, c), (d, e, f), (g, h, i) = m.tolist()
    co = [
        e * i - f * h,
        c * h - b * i,
        b * f - c * e,
        f * g - d * i,
        a * i - c * g,
        c * d - a * f,
        d * h - e * g,
        b * g - a * h,
        a * e - b * d,
    ]
    det = a * co[0] + b * co[3] + c * co[6]
    if det == 0.0:
        raise np.linalg.LinAlgError("singular cell")
    return np.array(co).reshape(3, 3) / det


def _wrapped(positions: np.ndarray, cell: np.ndarray, periodic: np.ndarray):
    """(fractional coordinates wrapped along periodic axes, basis, plane spacings 1/d_i)."""
    basis = complete_cell(cell, periodic)
    inverse = inverse_3x3(basis)
    frac = positions @ inverse
    frac -= np.floor(frac) * periodic
    return frac, basis, np.linalg.norm(inverse, axis=0)


def image_shifts(cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """How many lattice shifts the searches below visit for `cutoff`: the product over periodic axes of
    2 * (floor(cutoff / d_i) + 1) + 1 (d_i: lattice plane spacing); a float, as it overflows for a flat cell."""
    periodic = np.asarray(pbc, dtype=bool)
    if not periodic.any():
        return 1.0
    spacing_inv = np.linalg.norm(inverse_3x3(complete_cell(cell, periodic)), axis=0)[periodic]
    return float(np.prod(2.0 * (np.floor(cutoff * spacing_inv) + 1.0) + 1.0))


def _images(
    frac: np.ndarray, basis: np.ndarray, periodic: np.ndarray, reach: np.ndarray
) -> np.ndarray:
    shifts = np.array(
        list(
            itertools.product(*(range(-r, r + 1) if p else (0,) for r, p in zip(reach, periodic)))
        ),
        dtype=np.float64,
    )
    return ((frac[None, :, :] + shifts[:, None, :]).reshape(-1, 3)) @ basis


def closest_pair(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> float:
    """The shortest interatomic distance (periodic images included) if it is below `cutoff`, else inf."""
    periodic = np.asarray(pbc, dtype=bool)
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if not periodic.any():
        if n > _DENSE_MAX_ATOMS:
            d, _ = cKDTree(positions).query(positions, k=2, distance_upper_bound=cutoff)
            return float(d[:, 1].min())
        frac, basis, mic = positions, np.eye(3), True
    else:
        frac, basis, spacing_inv = _wrapped(positions, cell, periodic)
        mic = bool((cutoff * spacing_inv[periodic] < 0.5).all())
    if mic and n <= _DENSE_MAX_ATOMS:
        delta = (frac[:, None, :] - frac[None, :, :]).reshape(-1, 3)
        delta -= np.rint(delta) * periodic
        vectors = delta @ basis
        d2 = np.einsum("ij,ij->i", vectors, vectors).reshape(n, n)
        np.fill_diagonal(d2, np.inf)
        best = float(np.sqrt(d2.min())) if n > 1 else np.inf
        return best if best < cutoff else float("inf")
    reach = np.floor(cutoff * spacing_inv).astype(int) + 1
    tree = cKDTree(_images(frac, basis, periodic, reach))
    d, _ = tree.query(frac @ basis, k=2, distance_upper_bound=cutoff)
    best = float(d[:, 1].min())
    return best if best < cutoff else float("inf")


def count_neighbours(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> int:
    """Number of ordered pairs (i, j, image) closer than `cutoff`: the sum over atoms of their neighbours."""
    periodic = np.asarray(pbc, dtype=bool)
    positions = np.asarray(positions, dtype=np.float64)
    if periodic.any():
        frac, basis, spacing_inv = _wrapped(positions, cell, periodic)
        reach = np.floor(cutoff * spacing_inv).astype(int) + 1
        images = _images(frac, basis, periodic, reach)
        centres = frac @ basis
    else:
        images = centres = positions
    pairs = cKDTree(images).count_neighbors(cKDTree(centres), np.nextafter(cutoff, 0))
    return int(pairs) - len(positions)
