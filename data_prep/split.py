"""Deterministic, group-aware splits. Every frame has a split group (`split_group`); sha256(salt + group key)
-> a number in [0, 1) -> the ratio interval it falls in. A group's split depends on its key alone, so adding
data never moves an old frame, and all frames of one group always share a split.

Group rules (`group_by`):
- material (default): the material or trajectory id where the input names one (the frame's structure_id, when
  it is not the frame's own id), else the reduced composition;
- composition: the reduced composition of every frame (polymorphs of one formula share a split);
- id: the frame's structure_id as read, which is the frame's own id where the input names no material (sibling
  MD snapshots then land in different splits: only on request).
"""

from __future__ import annotations

import hashlib

from foundation.data.composition import reduced_formula
from foundation.data.schema import Frame

GROUP_RULES = ("material", "composition", "id")


def split_group(frame: Frame, rule: str) -> tuple[str, str]:
    """(kind, key) of the frame's split group under `rule`; kind is material, composition or id."""
    if rule == "id":
        return "id", frame.structure_id
    if rule == "material" and frame.structure_id != frame.frame_id:
        return "material", frame.structure_id
    return "composition", reduced_formula(frame.numbers)


def split_fraction(group_key: str, salt: str = "") -> float:
    """The group's position in [0, 1): the first 8 bytes of sha256(salt + key) over 2^64."""
    digest = hashlib.sha256((salt + group_key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(group_key: str, ratios: dict[str, float], salt: str = "") -> str:
    """The split whose cumulative ratio interval holds the group's fraction (ratios in their given order)."""
    x = split_fraction(group_key, salt)
    edge = 0.0
    names = [name for name, r in ratios.items() if r > 0]
    for name in names:
        edge += ratios[name]
        if x < edge:
            return name
    return names[-1]
