"""Duplicate detection: identical frames (same elements, positions and cell on a tolerance grid) and
repeated frame ids, decided over the whole input in input order, so the first occurrence is always kept."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from foundation.data.schema import Frame

KEY_BYTES = 16
# Keys examined in memory at once by duplicates_in_buckets: ~150 bytes per key while one bucket is sorted.
FRAMES_PER_BUCKET = 1 << 20
_ENTRY = np.dtype([("index", "<i8"), ("key", f"V{KEY_BYTES}")])


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


def duplicates_in_buckets(
    parts: Iterable[tuple[np.ndarray, np.ndarray]],
    frames: int,
    scratch: Path,
    frames_per_bucket: int = FRAMES_PER_BUCKET,
) -> tuple[np.ndarray, np.ndarray]:
    """(index of every repeated key, index of its first occurrence), sorted by index, for keys that arrive in
    increasing index order as parts (indices (m,) int64, keys (m, 16) uint8). The keys (uniform digests) are spread
    over about frames / frames_per_bucket files in `scratch` by their first bytes; each file is then deduplicated
    on its own, so memory holds one bucket of keys, not the whole input."""
    buckets = max(1, -(-frames // frames_per_bucket))
    paths = [Path(scratch) / f"keys-{b:05d}.bin" for b in range(buckets)]
    handles = [open(path, "wb") for path in paths]
    try:
        for indices, keys in parts:
            entries = np.empty(len(indices), _ENTRY)
            entries["index"] = indices
            entries["key"] = np.ascontiguousarray(keys).view(f"V{KEY_BYTES}").reshape(-1)
            which = np.ascontiguousarray(keys[:, :4]).view("<u4").reshape(-1) % buckets
            order = np.argsort(
                which, kind="stable"
            )  # stable: each bucket's entries stay in input order
            bounds = np.searchsorted(which[order], np.arange(buckets + 1))
            for b in np.flatnonzero(np.diff(bounds)):
                entries[order[bounds[b] : bounds[b + 1]]].tofile(handles[b])
    finally:
        for handle in handles:
            handle.close()
    repeated, owners = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for path in paths:
        entries = np.fromfile(path, dtype=_ENTRY)
        path.unlink()
        first, owner = first_occurrences(
            np.ascontiguousarray(entries["key"]).view(np.uint8).reshape(-1, KEY_BYTES)
        )
        repeated.append(entries["index"][~first])
        owners.append(entries["index"][owner[~first]])
    repeated, owners = np.concatenate(repeated), np.concatenate(owners)
    order = np.argsort(repeated)
    return repeated[order], owners[order]
