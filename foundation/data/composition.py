"""Composition keys of frames: the reduced formula (a split group where the input names no material) and
64-bit keys of reduced and full compositions, computed from atomic numbers or, without decoding any record,
from the CSR composition arrays of prep summaries (comp_z, comp_n, comp_len).

A key is the wrapping uint64 sum of splitmix64(Z << 32 | count) over a frame's elements: order-free, the same
in every process and release, and colliding for two different compositions with probability ~2^-64.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase.data import chemical_symbols


def reduced_formula(numbers: np.ndarray) -> str:
    """Elements in order of atomic number, each with its count divided by the counts' gcd (1 omitted): 'H2O'."""
    counts = np.bincount(np.asarray(numbers, dtype=np.int64))
    z = np.flatnonzero(counts)
    n = counts[z] // np.gcd.reduce(counts[z]) if z.size else counts[z]
    return "".join(chemical_symbols[a] + (str(b) if b > 1 else "") for a, b in zip(z, n))


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def composition_keys(
    comp_z: np.ndarray, comp_n: np.ndarray, comp_len: np.ndarray, reduced: bool
) -> np.ndarray:
    """(frames,) uint64 keys of the compositions given as CSR arrays: element numbers and counts of every frame,
    frame after frame, comp_len elements each. `reduced`: counts divided by their gcd (H4O2 = H2O)."""
    lengths = np.asarray(comp_len, dtype=np.int64)
    keys = np.zeros(len(lengths), dtype=np.uint64)
    present = lengths > 0
    if not present.any():
        return keys
    starts = (np.cumsum(lengths) - lengths)[present]
    counts = np.asarray(comp_n, dtype=np.int64)
    if reduced:
        counts = counts // np.repeat(np.gcd.reduceat(counts, starts), lengths[present])
    with np.errstate(over="ignore"):
        mixed = _splitmix64((np.asarray(comp_z, dtype=np.int64) << 32) | counts)
        keys[present] = np.add.reduceat(mixed, starts)
    return keys


def keys_of_structures(numbers: Iterable[np.ndarray], reduced: bool = True) -> np.ndarray:
    """Composition keys of structures given by their atomic numbers (see composition_keys)."""
    comp_z, comp_n, comp_len = [], [], []
    for atoms in numbers:
        counts = np.bincount(np.asarray(atoms, dtype=np.int64))
        z = np.flatnonzero(counts)
        comp_z.append(z)
        comp_n.append(counts[z])
        comp_len.append(len(z))
    if not comp_len:
        return np.zeros(0, dtype=np.uint64)
    return composition_keys(np.concatenate(comp_z), np.concatenate(comp_n), comp_len, reduced)
