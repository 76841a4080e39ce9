"""Deterministic splits by structure_id: sha256(salt + id) -> a number in [0, 1) -> the ratio interval it
falls in. A structure's split depends on its id alone, so adding data never moves an old frame and all frames
of one structure always share a split."""

from __future__ import annotations

import hashlib


def split_fraction(structure_id: str, salt: str = "") -> float:
    """The structure's position in [0, 1): the first 8 bytes of sha256(salt + id) over 2^64."""
    digest = hashlib.sha256((salt + structure_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(structure_id: str, ratios: dict[str, float], salt: str = "") -> str:
    """The split whose cumulative ratio interval holds the structure's fraction (ratios in their given order)."""
    x = split_fraction(structure_id, salt)
    edge = 0.0
    names = [name for name, r in ratios.items() if r > 0]
    for name in names:
        edge += ratios[name]
        if x < edge:
            return name
    return names[-1]
