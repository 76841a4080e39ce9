"""Duplicate detection: identical frames (same elements, positions and cell on a tolerance grid) and
repeated frame ids, decided over the whole input in input order, so the first occurrence is always kept."""

from __future__ import annotations

import hashlib

import numpy as np

from foundation.data.schema import Frame

KEY_BYTES = 16


def structure_key(frame: Frame, tolerance: float) -> bytes:
    """16-byte digest of numbers, pbc, and positions and cell rounded to multiples of `tolerance` (A), and the
    frame's source tag when it has one: one geometry computed with two DFT settings is two frames, not a duplicate."""
    digest = hashlib.blake2b(digest_size=KEY_BYTES)
    if frame.source:
        digest.update(b"source\0" + frame.source.encode() + b"\0")
    digest.update(frame.numbers.tobytes())
    digest.update(frame.pbc.tobytes())
    digest.update(np.round(frame.positions / tolerance).astype(np.int64).tobytes())
    digest.update(np.round(frame.cell / tolerance).astype(np.int64).tobytes())
    return digest.digest()


def text_key(text: str) -> bytes:
    """16-byte digest of a string (frame ids)."""
    return hashlib.blake2b(text.encode(), digest_size=KEY_BYTES).digest()


def first_occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For keys (n, 16) uint8 in input order: (is_first (n,) bool, index of each key's first occurrence)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    view = np.ascontiguousarray(keys).view(f"V{KEY_BYTES}").reshape(-1)
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    owner = first[inverse.reshape(-1)]
    return owner == np.arange(len(keys)), owner
